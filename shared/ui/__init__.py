"""The run-history page served by the `api` function under /ui/: static HTML/CSS/JS that calls the JSON API.

No build step and no tenant data in the files: the page asks for a tenant id and an API key, keeps the key in the
tab's sessionStorage only, and reads everything through the same API (`X-API-Key`) a script would use.
"""
