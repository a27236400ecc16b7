"""Eval harness: latency, memory, fidelity against the teacher, parity gate, reports."""
