raise RuntimeError("the user's functions.py was imported in place of the platform's functions package")
