"""Peers for tests, demos and the benchmark: a fake OpenAI and a 46elks call simulator.

No module that serves a real call imports them (`make lint` holds that).
"""
