"""The Kerf world: the demo shop database (schema.py) and its data generator (generate.py)."""
