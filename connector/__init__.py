"""Microsoft Defender for Endpoint connector.

The package is a SOAR plugin: ``manifest.json`` declares the connector, its
configuration and its actions; :mod:`connector.cli.main` runs them; the embedded
runtime (:mod:`connector.runtime`) plays the platform's part offline.
"""

__version__ = "0.1.0"
