"""A package, so `module = pkg.site:app` exercises the dotted form."""
