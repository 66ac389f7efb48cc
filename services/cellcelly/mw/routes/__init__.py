"""The MW's routes, one router per audience: auth (anyone), me (a subscriber's own data), catalogue
(public), admin. `cellcelly.mw.app.create_app` puts them together with the web UI's files."""
