"""The one table from enroll's errors to SCEP failInfo (RFC 8894 §3.2.1.4).

Every `enroll.errors.EnrollError` class maps to a failInfo here; checks the SCEP layer
makes itself (CMS signature, algorithms, signingTime) raise `ScepFailure` with the
failInfo RFC 8894 names for them (`ScepFailure` is itself an `EnrollError`). Anything
else is an internal error: logged server-side with the request id, answered with
failInfo badRequest and a failInfoText that carries only that id.
"""

from __future__ import annotations

import enum

from enroll import errors


class FailInfo(enum.Enum):
    """RFC 8894 §3.2.1.4: failInfo values, sent as PrintableString decimal."""

    BAD_ALG = "0"
    BAD_MESSAGE_CHECK = "1"
    BAD_REQUEST = "2"
    BAD_TIME = "3"
    BAD_CERT_ID = "4"


class ScepFailure(errors.EnrollError):
    """A check of the SCEP layer failed; answered as a FAILURE CertRep.

    `detail` is client-safe and goes into failInfoText (RFC 8894 §3.2.1.4.1)."""

    def __init__(self, fail_info: FailInfo, detail: str) -> None:
        super().__init__(detail)
        self.fail_info = fail_info


UNDECRYPTABLE_TEXT = "the encrypted content is not a valid request"


class Undecryptable(ScepFailure):
    """Anything that went wrong once the envelope is being opened, up to a parsed,
    self-signed content (docs/scep.md, "One answer once decryption starts"): RSA key
    transport, cipher key length, CBC padding, a content that is not a PKCS#10 (or
    IssuerAndSerialNumber), a bad CSR signature, a CSR key that is not the signer's.

    Every one gets the same failInfo and text, so the answers are no padding oracle;
    `reason` is for the operator's log only and never holds the content."""

    def __init__(self, reason: str) -> None:
        super().__init__(FailInfo.BAD_MESSAGE_CHECK, UNDECRYPTABLE_TEXT)
        self.reason = reason


FAIL_INFO: dict[type[errors.EnrollError], FailInfo] = {
    errors.MalformedInput: FailInfo.BAD_REQUEST,
    errors.BadCSR: FailInfo.BAD_REQUEST,
    # RFC 8894 §3.2.1.4: the PKCS#10's own signature is a message check (badMessageCheck);
    # a signature we cannot verify is an unsupported algorithm (badAlg).
    errors.CSRSignatureInvalid: FailInfo.BAD_MESSAGE_CHECK,
    errors.CSRAlgorithmUnsupported: FailInfo.BAD_ALG,
    errors.BadPublicKey: FailInfo.BAD_ALG,
    errors.Unauthorized: FailInfo.BAD_REQUEST,
    errors.PolicyDenied: FailInfo.BAD_REQUEST,
    # RFC 8894 §3.2.1.4: "transaction not permitted"; failInfoText says where to renew.
    errors.MigrationRequired: FailInfo.BAD_REQUEST,
    # RFC 8894 §3.3.3: no certificate matches the CertPoll/GetCert/GetCRL criteria.
    errors.NotFound: FailInfo.BAD_CERT_ID,
    errors.Conflict: FailInfo.BAD_REQUEST,
    errors.RateLimited: FailInfo.BAD_REQUEST,
    errors.Unavailable: FailInfo.BAD_REQUEST,
}

INTERNAL_ERROR_TEXT = "internal error"


def internal_text(request_id: str) -> str:
    """failInfoText of an internal error: the request id the log line carries."""
    return f"{INTERNAL_ERROR_TEXT} (request {request_id})"


def fail_info_for(exc: BaseException, request_id: str = "-") -> tuple[FailInfo, str]:
    """The failInfo and client-safe text for any exception."""
    if isinstance(exc, ScepFailure):
        return exc.fail_info, exc.detail
    if isinstance(exc, errors.EnrollError):
        for cls in type(exc).__mro__:
            if cls in FAIL_INFO:
                return FAIL_INFO[cls], exc.detail
        return FailInfo.BAD_REQUEST, exc.detail
    return FailInfo.BAD_REQUEST, internal_text(request_id)
