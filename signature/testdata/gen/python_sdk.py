"""Conformance vectors, step 2 of 2: adds twilio-python's signatures and
verdicts to the output of node_sdk.js and prints the final vectors.

Usage: $TWILIOGUARD_SDK_PYTHON python_sdk.py < step1.json > vectors.json
(run with the interpreter of the environment twilio is installed in).
"""

import json
import logging
import sys
from importlib.metadata import version
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator, get_signature_algorithm


class MultiDict(dict):
    """A werkzeug-like MultiDict: item access gives the first value,
    getall() every value, in wire order."""

    def __init__(self, pairs):
        super().__init__()
        self._all = {}
        for k, v in pairs:
            self.setdefault(k, v)
            self._all.setdefault(k, []).append(v)

    def getall(self, key):
        return self._all[key]


def is_form(content_type):
    return content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def python_signature(case, secrets):
    """twilio-python's compute_signature over what the header signature covers."""
    signed = case["signed"]
    validator = RequestValidator(secrets[signed["secret_of"]])
    if signed["string"] is not None:
        return validator.compute_signature(signed["string"], {}, signed["algorithm"])
    return validator.compute_signature(signed["url"], MultiDict(signed["params"]), signed["algorithm"])


def python_verdict(case):
    """What an app using twilio-python decides: with a settings header, the
    SharedKey secret and the header's algorithm, otherwise each held auth
    token with HMAC_SHA1. Form bodies arrive as a MultiDict (Flask), JSON
    bodies as the raw string, GET requests with no params."""
    settings = case["signature_settings"]
    creds = [c for c in case["credentials"] if bool(c.get("shared_key")) == bool(settings)]
    algorithm = get_signature_algorithm(settings)
    if case["method"] == "GET":
        params = {}
    elif is_form(case["content_type"]):
        params = MultiDict(parse_qsl(case["body"], keep_blank_values=True))
    else:
        params = case["body"]
    try:
        for c in creds:
            if RequestValidator(c["secret"]).validate(case["url"], params, case["signature"], algorithm):
                return "valid"
        return "invalid"
    except Exception:  # the SDK raises on some inputs; record that
        return "error"


def main():
    logging.disable(logging.WARNING)  # the SDK warns about unsupported algorithms
    data = json.load(sys.stdin)
    secrets = data["secrets"]
    data["generator"]["twilio-python"] = version("twilio")
    for case in data["cases"]:
        case["python"] = {
            "signature": python_signature(case, secrets),
            "verdict": python_verdict(case),
        }
    json.dump(data, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
