raise RuntimeError("the user's protocol.py was imported in place of the platform's protocol package")
