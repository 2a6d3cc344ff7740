"""One module per view: a ``layout(user, lang)`` function; their callbacks live in callbacks/."""
