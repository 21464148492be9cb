"""``mde-connector console``: a local web console over the embedded runtime.

The console is a thin layer: :mod:`connector.console.app` answers API calls
with the same store, manifest, playbook validator, engine and actions the CLI
uses; :mod:`connector.console.server` serves them and the static page
(``static/``: plain ES modules, no build step, no CDN) on loopback, behind a
per-start access token, a CSRF header and an Origin/Host check.
"""
