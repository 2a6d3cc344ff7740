"""Dash callbacks, grouped by view; importing this package registers them all."""

import importlib
import pkgutil

# every module here registers its callbacks through cockpit.guard.secure_callback on import
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
