"""Write a local `.env` for development on first use: DEBUG on and freshly generated secrets.

`make run` calls it, so that every command the README shows (`manage.py createsuperuser`,
`manage.py fake_openai`, `simulate_call`) works on a fresh clone without setting variables by
hand. An existing file is never touched. Not for production: there the platform's config vars
hold the secrets and DEBUG stays off.

Usage: python -m voiceagent.devenv [PATH]   (default: .env in the project directory)
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def dev_env_text() -> str:
    return (
        "# Local development settings, written by `make run` on first use. Not in git; never use in production.\n"
        "DEBUG=1\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"ELKS_WS_SECRET={secrets.token_urlsafe(32)}\n"
        "# OPENAI_API_KEY=sk-...\n"
    )


def write_dev_env(path: Path) -> bool:
    """Create `path` if it does not exist; True if it was written."""
    if path.exists():
        return False
    path.write_text(dev_env_text(), encoding="utf-8")
    return True


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else BASE_DIR / ".env"
    if write_dev_env(path):
        print(f"wrote {path}: DEBUG on and generated secrets, for local development")


if __name__ == "__main__":
    main(sys.argv[1:])
