"""Retention: every retention promise as a rule that deletes or anonymises on time, with proof.

rules.py binds rules to tables and builds their due conditions (clocks.py does the calendar,
consent.py the consent state), plan.py says what is due, sweep.py does it in bounded batches,
journal.py keeps the proof, holds.py the legal holds on persons.
"""
