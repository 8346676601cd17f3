"""EMULATOR SHIM (ministack only; never run against AWS): create the HTTP API's routes from its OpenAPI body.

`AWS::Serverless::HttpApi` becomes an `AWS::ApiGatewayV2::Api` whose `Body` is an OpenAPI 3 document
(routes, Lambda proxy integrations, the JWT authorizer and the optional Lambda authorizer); on AWS, API Gateway imports that body when the
stack creates the API. ministack 1.5.33 imports an OpenAPI body only for REST APIs (v1): its
AWS::ApiGatewayV2::Api provisioner ignores `Body`, so the deployed HTTP API has no routes at all and
every request answers 404.

This script does that import the way API Gateway documents it, through the ordinary API Gateway v2
calls (CreateAuthorizer, CreateIntegration, CreateRoute), from the *processed* template of the deployed
stack (GetTemplate TemplateStage=Processed, i.e. exactly what the SAM transform produced from
template.yaml). The intrinsics left in the body (Ref to parameters and pseudo parameters, Fn::Sub with
`${Function.Arn}`) are resolved from the stack's parameters and resources. Anything it does not
understand is an error (exit 1), never skipped.

    python import_http_api.py STACK_NAME        # endpoint/credentials from the AWS_* environment

Prints one line per created route. Refuses to run if the API already has routes (as it would on AWS).
"""
from __future__ import annotations

import json
import re
import sys

import boto3
import yaml


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation short-form tags (!Ref, !Sub, ...), in case the body comes back as YAML."""


def _tag(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def load_template(body):
    if isinstance(body, dict):
        return body
    try:
        return json.loads(body)
    except ValueError:
        return yaml.load(body, Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)


class Resolver:
    def __init__(self, session, stack_name: str, template: dict):
        cf = session.client("cloudformation")
        stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
        arn = stack["StackId"]
        parts = arn.split(":")
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::StackId": arn,
            "AWS::Region": parts[3],
            "AWS::AccountId": parts[4],
            "AWS::Partition": parts[1],
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        self.param_types = {k: (v or {}).get("Type", "String") for k, v in (template.get("Parameters") or {}).items()}
        self.resources = {
            r["LogicalResourceId"]: r for r in cf.describe_stack_resources(StackName=stack_name)["StackResources"]
        }
        self.session = session
        self._arns: dict[str, str] = {}

    def ref(self, name: str):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            value = self.params[name]
            if self.param_types.get(name, "").startswith(("CommaDelimitedList", "List<")):
                return [v.strip() for v in value.split(",")]
            return value
        if name in self.resources:
            return self.resources[name]["PhysicalResourceId"]
        raise ValueError(f"unresolvable Ref {name}")

    def get_att(self, logical: str, attr: str) -> str:
        res = self.resources.get(logical)
        if res is None:
            raise ValueError(f"unknown resource {logical} in GetAtt")
        if res["ResourceType"] == "AWS::Lambda::Function" and attr == "Arn":
            if logical not in self._arns:
                fn = self.session.client("lambda").get_function(FunctionName=res["PhysicalResourceId"])
                self._arns[logical] = fn["Configuration"]["FunctionArn"]
            return self._arns[logical]
        raise ValueError(f"unsupported GetAtt {logical}.{attr} ({res['ResourceType']})")

    def resolve(self, node):
        if isinstance(node, list):
            return [self.resolve(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                logical, attr = value if isinstance(value, list) else value.split(".", 1)
                return self.get_att(logical, attr)
            if key == "Fn::Sub":
                text, extra = (value, {}) if isinstance(value, str) else (value[0], self.resolve(value[1]))

                def sub(m):
                    name = m.group(1)
                    if name in extra:
                        return str(extra[name])
                    if "." in name and not name.startswith("AWS::"):
                        return self.get_att(*name.split(".", 1))
                    return str(self.ref(name))

                return re.sub(r"\$\{([^}!][^}]*)\}", sub, text)
            if key.startswith("Fn::"):
                raise ValueError(f"unsupported intrinsic {key}")
        return {k: self.resolve(v) for k, v in node.items()}


def main(stack_name: str) -> int:
    session = boto3.session.Session()
    cf = session.client("cloudformation")
    template = load_template(cf.get_template(StackName=stack_name, TemplateStage="Processed")["TemplateBody"])
    resolver = Resolver(session, stack_name, template)
    apis = [(lid, r) for lid, r in template["Resources"].items()
            if r.get("Type") == "AWS::ApiGatewayV2::Api" and "Body" in r.get("Properties", {})]
    if not apis:
        print("no AWS::ApiGatewayV2::Api with a Body in the processed template", file=sys.stderr)
        return 1
    gw = session.client("apigatewayv2")
    for logical, res in apis:
        api_id = resolver.ref(logical)
        if gw.get_routes(ApiId=api_id).get("Items"):
            print(f"{logical} ({api_id}) already has routes; the emulator imported the body itself", file=sys.stderr)
            return 1
        body = resolver.resolve(res["Properties"]["Body"])
        if body.get("x-amazon-apigateway-cors") or body.get("x-amazon-apigateway-importexport-version"):
            print("unsupported OpenAPI extension in the body", file=sys.stderr)
            return 1
        authorizers = {}
        for name, scheme in ((body.get("components") or {}).get("securitySchemes") or {}).items():
            ext = scheme.get("x-amazon-apigateway-authorizer") or {}
            source = ext.get("identitySource") or []
            source = source if isinstance(source, list) else [source]
            if ext.get("type") == "jwt":
                jwt = ext["jwtConfiguration"]
                created = gw.create_authorizer(
                    ApiId=api_id, Name=name, AuthorizerType="JWT", IdentitySource=source,
                    JwtConfiguration={"Issuer": jwt["issuer"], "Audience": list(jwt.get("audience") or [])},
                )
                authorizers[name] = ("JWT", created["AuthorizerId"])
            elif ext.get("type") == "request":
                # A Lambda authorizer (payload 2.0, simple responses): routes using it are CUSTOM.
                created = gw.create_authorizer(
                    ApiId=api_id, Name=name, AuthorizerType="REQUEST", IdentitySource=source,
                    AuthorizerUri=ext["authorizerUri"],
                    AuthorizerPayloadFormatVersion=str(ext.get("authorizerPayloadFormatVersion", "2.0")),
                    EnableSimpleResponses=bool(ext.get("enableSimpleResponses", False)),
                    AuthorizerResultTtlInSeconds=int(ext.get("authorizerResultTtlInSeconds", 0)),
                )
                authorizers[name] = ("CUSTOM", created["AuthorizerId"])
            else:
                raise ValueError(f"security scheme {name}: only JWT and Lambda (request) authorizers are "
                                 f"imported, got {ext.get('type')}")
        default_security = body.get("security")
        for path, item in (body.get("paths") or {}).items():
            for method, op in item.items():
                if method == "parameters":
                    continue
                integ = op.get("x-amazon-apigateway-integration")
                if not integ or integ.get("type", "").lower() != "aws_proxy":
                    raise ValueError(f"{method.upper()} {path}: only aws_proxy integrations are imported")
                created = gw.create_integration(
                    ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationMethod=integ.get("httpMethod", "POST"),
                    IntegrationUri=integ["uri"], PayloadFormatVersion=integ.get("payloadFormatVersion", "2.0"),
                )
                security = op.get("security", default_security) or []
                names = [n for req in security for n in req]
                kwargs = {"AuthorizationType": "NONE"}
                if len(names) > 1:
                    raise ValueError(f"{method.upper()} {path}: several security requirements")
                if names and names[0] != "NONE":
                    kind, authorizer_id = authorizers[names[0]]
                    kwargs = {"AuthorizationType": kind, "AuthorizerId": authorizer_id}
                    scopes = security[0][names[0]]
                    if scopes:
                        kwargs["AuthorizationScopes"] = scopes
                route_key = f"{'ANY' if method == 'x-amazon-apigateway-any-method' else method.upper()} {path}"
                gw.create_route(ApiId=api_id, RouteKey=route_key,
                                Target=f"integrations/{created['IntegrationId']}", **kwargs)
                print(f"  {route_key:75} {kwargs['AuthorizationType']}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
