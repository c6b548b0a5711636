"""`python -m calls.testing.fake_openai`: the fake OpenAI Realtime GA server on its own."""

import sys

from calls.testing.fake_openai.server import main

main(sys.argv[1:])
