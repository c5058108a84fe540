"""Built-in Intune plugin: enroll as a third-party SCEP CA behind Microsoft Intune (`plugin`)."""
