"""Front-ends: SCEP, EST, ACME."""
