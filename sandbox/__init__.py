"""The world around the bridge, for demos and tests: the sample practice
database, the receptionist simulator, stand-ins for third-party services and
the reference cloud. Never shipped in the installer."""
