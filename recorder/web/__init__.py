"""The web page: log in, search calls, open one, listen. Server-rendered HTML, no script."""
