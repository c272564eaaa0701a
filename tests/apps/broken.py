"""Fails at import time: the loader must log the traceback and go on."""
import this_module_does_not_exist  # noqa: F401

application = None
