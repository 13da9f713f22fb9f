"""Consent and communications: the ledger of consent events, current state per person and
purpose, unsubscribe links, Global Privacy Control, and the do-not-contact list."""
