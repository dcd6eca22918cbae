"""The supervisors' review: scoped, audited reads of the suggestion log.

``access`` turns a user into SQL where-clauses (who may see what),
``queries`` reads the log, stats and access log through them, and ``charts``
draws the weekly bar charts as SVG on the server.
"""
