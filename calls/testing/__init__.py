"""Peers for tests, demos and the benchmark, each a product of its own.

    fake_openai      a fake OpenAI Realtime GA server (tests, `manage.py fake_openai`, the benchmark)
    elks_simulator   46elks' side of a call (tests, `manage.py simulate_call`)
    caller_audio     what the simulated caller says and hears, and the call's result
    wire             minimal WebSocket framing for peers under load

No module that serves a real call imports them (`make lint` holds that: TID253 in ruff.toml).
"""
