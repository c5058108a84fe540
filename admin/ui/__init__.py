"""The web console (``<prefix>/ui/``): server-rendered pages (Jinja2), no build step,
no JavaScript needed. `routes` assembles the pages of every module here."""
