"""Inbound: what the national and regional systems send back (orientation decisions,
notifications, documents), matched to the person, recorded once, audited, and offered to
the coordinator as proposed plan updates — never applied silently."""
