"""Built-in device attestation verifiers (the ``enroll_verify_attestation`` hook)."""
