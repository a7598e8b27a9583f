"""Transforms a SAM template offline with aws-sam-translator and prints the
CloudFormation result as JSON on stdout.

usage: python3 sam_translate.py TEMPLATE [Key=Value ...]

Offline means: no managed-policy lookup (the loader returns {}, so managed
policies become arn:${AWS::Partition}:iam::aws:policy/... references) and
local CodeUri values replaced by an S3 location, as `sam package` would.
"""
import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class OfflinePolicyLoader:
    def load(self):
        return {}


def main():
    path = sys.argv[1]
    params = dict(a.split("=", 1) for a in sys.argv[2:])
    with open(path) as f:
        tpl = yaml_parse(f.read())
    glob = tpl.get("Globals", {}).get("Function", {})
    if "CodeUri" in glob:
        glob["CodeUri"] = "s3://offline-bucket/code.zip"
    for res in tpl.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function" and "CodeUri" in res.get("Properties", {}):
            res["Properties"]["CodeUri"] = "s3://offline-bucket/code.zip"
    out = transform(tpl, params, OfflinePolicyLoader())
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
