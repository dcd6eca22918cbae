"""Signal lexicons (YAML data files), loaded by plugin.signals; a package so setuptools ships them."""
