"""The engine: finds a person's rows in every declared database and acts on them, set-based.

It knows nothing of HTTP or of the app store: a manifest, identities and an action go in,
a result comes out.
"""
