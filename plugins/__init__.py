"""Built-in plugins, loaded through the `enroll` entry-point group like any other."""
