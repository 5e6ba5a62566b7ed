#!/usr/bin/env python3
"""Checks infra/template.yaml for what cfn-lint and checkov do not: the rules of this gateway.

Usage: python infra/check_template.py infra/template.yaml
       python infra/check_template.py --self-test infra/template.yaml

Exits 0 when every rule holds, 1 naming each broken rule otherwise (2 on a usage or parse error).
--self-test breaks the template in memory once per rule and fails unless each break is caught.

Rules:
  1. Every SQS event source (SAM `Events` of Type SQS, or AWS::Lambda::EventSourceMapping on a
     queue) has FunctionResponseTypes exactly [ReportBatchItemFailures], a BatchSize of 1-10 and a
     ScalingConfig.MaximumConcurrency of at least 2; the function's reserved concurrency (when set)
     is at least that.
  2. Every queue with a RedrivePolicy: maxReceiveCount between 5 and 100 (a parameter's Default,
     MinValue and MaxValue must all be in range); its dead-letter queue keeps messages longer
     than it does.
  3. Every queue read by an SQS event source has a VisibilityTimeout of at least 6 x the function's
     Timeout; the invoice-status-poster's work queue must exist and has a dead-letter queue.
  4. Every !Ref / !GetAtt / !Sub ${X} inside a function's Environment or Policies, or a role's
     Policies, names a resource or a parameter (or a pseudo parameter).
  5. Every AWS::Serverless::Function: Runtime provided.al2023, Architectures [arm64], Metadata
     BuildMethod rust-cargolambda and a BuildProperties.Binary that is a package under functions/;
     its own role; a log group with KmsKeyId and RetentionInDays; MAX_RECEIVE_COUNT (when set)
     equal to its queue's maxReceiveCount; secrets passed as *_SECRET_ARN referring to a
     AWS::SecretsManager::Secret, never as values.
  6. Every HTTP API route except POST /hicaps/webhooks uses the JWT authorizer, and every route's
     function may be invoked by API Gateway (an AWS::Lambda::Permission).
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

SQS_BATCH_FAILURES = ["ReportBatchItemFailures"]
MIN_RECEIVES, MAX_RECEIVES = 5, 100
SQS_DEFAULT_RETENTION = 345600
SQS_DEFAULT_VISIBILITY = 30
LAMBDA_DEFAULT_TIMEOUT = 3
WEBHOOK_ROUTE = "POST /hicaps/webhooks"
POSTER_BINARY = "invoice-status-poster"
PLAINTEXT_SECRET_NAME = re.compile(r"(_SECRET|_API_KEY|_PASSWORD|_TOKEN|_AUTH_VALUE)$")


# ------------------------------------------------------------------ loading


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns CloudFormation short tags into their long forms."""


def _construct(tag: str, node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    name = "Ref" if tag == "Ref" else ("Condition" if tag == "Condition" else f"Fn::{tag}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


for _tag in [
    "Ref", "Condition", "GetAtt", "Sub", "Join", "Select", "Split", "If", "Equals", "Not", "And", "Or",
    "FindInMap", "Base64", "Cidr", "GetAZs", "ImportValue", "Transform", "Length", "ToJsonString",
]:
    CfnLoader.add_constructor(f"!{_tag}", lambda loader, node, tag=_tag: _construct(tag, node, loader))


def load(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ValueError(f"{path}: not a CloudFormation template (no Resources)")
    return template


# ------------------------------------------------------------------ helpers


class Template:
    def __init__(self, data: dict, path: Path):
        self.data = data
        self.path = path
        self.resources: dict[str, dict] = data.get("Resources") or {}
        self.parameters: dict[str, dict] = data.get("Parameters") or {}
        self.globals_function: dict = (data.get("Globals") or {}).get("Function") or {}
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def of_type(self, kind: str) -> dict[str, dict]:
        return {name: r for name, r in self.resources.items() if isinstance(r, dict) and r.get("Type") == kind}

    def props(self, name: str) -> dict:
        return (self.resources.get(name) or {}).get("Properties") or {}

    def function_prop(self, name: str, key: str, default: Any = None) -> Any:
        props = self.props(name)
        return props[key] if key in props else self.globals_function.get(key, default)

    def target(self, value: Any) -> str | None:
        """The resource a Ref or GetAtt points at."""
        if isinstance(value, dict):
            if "Ref" in value and isinstance(value["Ref"], str):
                return value["Ref"]
            if "Fn::GetAtt" in value:
                ref = value["Fn::GetAtt"]
                if isinstance(ref, list) and ref:
                    return str(ref[0])
                if isinstance(ref, str):
                    return ref.split(".", 1)[0]
        return None

    def number(self, value: Any, what: str, bounded: bool = True) -> list[tuple[str, int]]:
        """The numbers a value may take: itself, or a parameter's Default, MinValue and MaxValue."""
        if isinstance(value, bool):
            self.problem(f"{what} is a boolean, not a number")
            return []
        if isinstance(value, (int, float)):
            return [("value", int(value))]
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return [("value", int(value))]
        ref = value.get("Ref") if isinstance(value, dict) else None
        if isinstance(ref, str) and ref in self.parameters:
            param = self.parameters[ref]
            found = [(f"parameter {ref} {key}", int(param[key])) for key in ("Default", "MinValue", "MaxValue") if key in param]
            missing = [key for key in ("Default", "MinValue", "MaxValue") if key not in param]
            if missing and bounded:
                self.problem(f"{what} is parameter {ref}, which has no {', '.join(missing)} to bound it")
            return found
        self.problem(f"{what} is {value!r}: not a number or a numeric parameter")
        return []

    def default_number(self, value: Any, what: str) -> int | None:
        """A value's number, or its parameter's Default."""
        if isinstance(value, dict) and "Fn::If" in value:
            branches = [b for b in value["Fn::If"][1:] if not (isinstance(b, dict) and b.get("Ref") == "AWS::NoValue")]
            value = branches[0] if branches else None
            if value is None:
                return None
        for label, number in self.number(value, what, bounded=False):
            if label == "value" or label.endswith("Default"):
                return number
        return None

    def sqs_event_sources(self) -> list[tuple[str, str, dict, str | None]]:
        """(where, function, properties, queue) of every SQS event source."""
        found = []
        for fname in self.of_type("AWS::Serverless::Function"):
            events = self.props(fname).get("Events") or {}
            for ename, event in events.items():
                if isinstance(event, dict) and event.get("Type") == "SQS":
                    props = event.get("Properties") or {}
                    found.append((f"{fname}.Events.{ename}", fname, props, self.target(props.get("Queue"))))
        for mname, mapping in self.of_type("AWS::Lambda::EventSourceMapping").items():
            props = mapping.get("Properties") or {}
            queue = self.target(props.get("EventSourceArn"))
            if queue and (self.resources.get(queue) or {}).get("Type") == "AWS::SQS::Queue":
                found.append((mname, self.target(props.get("FunctionName")) or "", props, queue))
        return found


# ------------------------------------------------------------------ rules


def check_sqs_event_sources(t: Template) -> None:
    sources = t.sqs_event_sources()
    if not sources:
        t.problem("no SQS event source found: the poster must consume the work queue")
    for where, function, props, queue in sources:
        kinds = props.get("FunctionResponseTypes")
        if kinds != SQS_BATCH_FAILURES:
            t.problem(f"{where}: FunctionResponseTypes is {kinds!r}, must be exactly {SQS_BATCH_FAILURES!r}")
        batch = t.default_number(props.get("BatchSize", 10), f"{where}.BatchSize")
        if batch is not None and not 1 <= batch <= 10:
            t.problem(f"{where}: BatchSize {batch} must be 1-10 (a batch is reported item by item)")
        scaling = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
        if scaling is None:
            t.problem(f"{where}: no ScalingConfig.MaximumConcurrency: the consumer's rate would be unbounded")
            continue
        for label, number in t.number(scaling, f"{where}.ScalingConfig.MaximumConcurrency"):
            if number < 2:
                t.problem(f"{where}: ScalingConfig.MaximumConcurrency ({label}) is {number}; SQS requires at least 2")
        reserved = t.function_prop(function, "ReservedConcurrentExecutions")
        if reserved is not None and function:
            low = t.default_number(reserved, f"{function}.ReservedConcurrentExecutions")
            high = t.default_number(scaling, f"{where}.ScalingConfig.MaximumConcurrency")
            if low is not None and high is not None and low < high:
                t.problem(
                    f"{function}: reserved concurrency {low} is below its SQS MaximumConcurrency {high}: "
                    "pollers would be throttled and messages dead-lettered"
                )


def check_redrive(t: Template) -> None:
    for name, queue in t.of_type("AWS::SQS::Queue").items():
        props = queue.get("Properties") or {}
        redrive = props.get("RedrivePolicy")
        if redrive is None:
            continue
        if not isinstance(redrive, dict):
            t.problem(f"{name}: RedrivePolicy must be a mapping")
            continue
        receives = redrive.get("maxReceiveCount")
        if receives is None:
            t.problem(f"{name}: RedrivePolicy has no maxReceiveCount")
        else:
            for label, number in t.number(receives, f"{name}.RedrivePolicy.maxReceiveCount"):
                if not MIN_RECEIVES <= number <= MAX_RECEIVES:
                    t.problem(
                        f"{name}: maxReceiveCount ({label}) is {number}; it must be {MIN_RECEIVES}-{MAX_RECEIVES} "
                        "(enough retries for a transient outage, few enough to surface a poison message)"
                    )
        dlq = t.target(redrive.get("deadLetterTargetArn"))
        if dlq is None or (t.resources.get(dlq) or {}).get("Type") != "AWS::SQS::Queue":
            t.problem(f"{name}: deadLetterTargetArn must be !GetAtt <queue in this template>.Arn")
            continue
        mine = t.default_number(props.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION), f"{name}.MessageRetentionPeriod")
        theirs = t.default_number(
            t.props(dlq).get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION), f"{dlq}.MessageRetentionPeriod"
        )
        if mine is not None and theirs is not None and theirs <= mine:
            t.problem(
                f"{dlq}: MessageRetentionPeriod {theirs} s must be longer than {name}'s {mine} s "
                "(a message's age carries over into its dead-letter queue)"
            )


def check_visibility(t: Template) -> None:
    poster_queues = []
    for where, function, _props, queue in t.sqs_event_sources():
        if not queue:
            t.problem(f"{where}: the queue must be !GetAtt <queue in this template>.Arn")
            continue
        timeout = t.default_number(t.function_prop(function, "Timeout", LAMBDA_DEFAULT_TIMEOUT), f"{function}.Timeout")
        visibility = t.default_number(
            t.props(queue).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY), f"{queue}.VisibilityTimeout"
        )
        if timeout is not None and visibility is not None and visibility < 6 * timeout:
            t.problem(
                f"{queue}: VisibilityTimeout {visibility} s must be at least 6 x {function}'s Timeout "
                f"{timeout} s = {6 * timeout} s"
            )
        binary = (((t.resources.get(function) or {}).get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        if binary == POSTER_BINARY:
            poster_queues.append(queue)
    if not poster_queues:
        t.problem(f"no SQS event source feeds the {POSTER_BINARY} function (the work queue)")
    for queue in poster_queues:
        if not t.props(queue).get("RedrivePolicy"):
            t.problem(f"{queue}: the work queue has no RedrivePolicy (dead-letter queue)")


PSEUDO = re.compile(r"^AWS::[A-Za-z]+$")
SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def references(value: Any) -> list[tuple[str, str]]:
    """(kind, name) of every Ref, GetAtt and Sub variable inside value."""
    found: list[tuple[str, str]] = []
    if isinstance(value, list):
        for item in value:
            found += references(item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.append(("Ref", inner))
            elif key == "Fn::GetAtt":
                name = inner[0] if isinstance(inner, list) and inner else str(inner).split(".", 1)[0]
                found.append(("GetAtt", str(name)))
            elif key == "Fn::Sub":
                text, variables = (inner[0], inner[1] if len(inner) > 1 else {}) if isinstance(inner, list) else (inner, {})
                names = frozenset(variables) if isinstance(variables, dict) else frozenset()
                if isinstance(text, str):
                    for variable in SUB_VARIABLE.findall(text):
                        base = variable.split(".", 1)[0]
                        if base not in names:
                            found.append(("GetAtt" if "." in variable and not PSEUDO.match(variable) else "Sub", base))
                found += references(variables)
            else:
                found += references(inner)
    return found


def check_references(t: Template) -> None:
    places: list[tuple[str, Any]] = []
    for name in t.of_type("AWS::Serverless::Function"):
        props = t.props(name)
        places.append((f"{name}.Environment", props.get("Environment")))
        places.append((f"{name}.Policies", props.get("Policies")))
    places.append(("Globals.Function.Environment", t.globals_function.get("Environment")))
    for kind in ("AWS::Lambda::Function",):
        for name in t.of_type(kind):
            places.append((f"{name}.Environment", t.props(name).get("Environment")))
    for name in t.of_type("AWS::IAM::Role"):
        places.append((f"{name}.Policies", t.props(name).get("Policies")))
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name in t.of_type(kind):
            places.append((f"{name}.PolicyDocument", t.props(name).get("PolicyDocument")))
    for where, value in places:
        for kind, name in references(value):
            if PSEUDO.match(name):
                continue
            if kind == "GetAtt":
                if name not in t.resources:
                    t.problem(f"{where}: !GetAtt {name}: no such resource")
            elif name not in t.resources and name not in t.parameters:
                shown = f"!Ref {name}" if kind == "Ref" else f"!Sub ${{{name}}}"
                t.problem(f"{where}: {shown}: no such resource or parameter")


def check_functions(t: Template) -> None:
    functions = t.of_type("AWS::Serverless::Function")
    if not functions:
        t.problem("no AWS::Serverless::Function in the template")
    roles: dict[str, str] = {}
    redrive_of = {
        queue: (t.props(queue).get("RedrivePolicy") or {}).get("maxReceiveCount")
        for queue in t.of_type("AWS::SQS::Queue")
    }
    sources = t.sqs_event_sources()
    for name, function in functions.items():
        props = t.props(name)
        metadata = function.get("Metadata") or {}
        runtime = t.function_prop(name, "Runtime")
        if runtime != "provided.al2023":
            t.problem(f"{name}: Runtime is {runtime!r}, must be provided.al2023")
        architectures = t.function_prop(name, "Architectures")
        if architectures != ["arm64"]:
            t.problem(f"{name}: Architectures is {architectures!r}, must be [arm64]")
        if metadata.get("BuildMethod") != "rust-cargolambda":
            t.problem(f"{name}: Metadata.BuildMethod is {metadata.get('BuildMethod')!r}, must be rust-cargolambda")
        binary = (metadata.get("BuildProperties") or {}).get("Binary")
        code_uri = t.function_prop(name, "CodeUri")
        if not binary:
            t.problem(f"{name}: Metadata.BuildProperties.Binary is missing (cargo-lambda builds one binary per function)")
        elif isinstance(code_uri, str):
            root = (t.path.parent / code_uri).resolve()
            if not (root / "Cargo.toml").is_file():
                t.problem(f"{name}: CodeUri {code_uri!r} ({root}) has no Cargo.toml")
            elif not (root / "functions" / binary / "Cargo.toml").is_file():
                t.problem(f"{name}: Binary {binary!r} is not a package under {root / 'functions'}")
        else:
            t.problem(f"{name}: CodeUri must be the workspace root as a relative path (e.g. ..)")
        role = t.target(props.get("Role"))
        if role is None or role not in t.resources:
            t.problem(f"{name}: Role must be !GetAtt <its own AWS::IAM::Role>.Arn")
        elif role in roles:
            t.problem(f"{name}: shares role {role} with {roles[role]}; each function needs its own least-privilege role")
        else:
            roles[role] = name
        log_group = t.target((props.get("LoggingConfig") or {}).get("LogGroup"))
        if log_group is None or (t.resources.get(log_group) or {}).get("Type") != "AWS::Logs::LogGroup":
            t.problem(f"{name}: LoggingConfig.LogGroup must be !Ref <its AWS::Logs::LogGroup>")
        else:
            group = t.props(log_group)
            for key in ("KmsKeyId", "RetentionInDays"):
                if key not in group:
                    t.problem(f"{log_group}: log group of {name} has no {key}")
        variables = ((t.function_prop(name, "Environment") or {}).get("Variables")) or {}
        for variable, value in variables.items():
            if PLAINTEXT_SECRET_NAME.search(variable):
                t.problem(f"{name}: environment variable {variable} would carry a secret's value; pass {variable}_SECRET_ARN")
            if variable.endswith("_SECRET_ARN"):
                secret = t.target(value)
                if secret is None or (t.resources.get(secret) or {}).get("Type") != "AWS::SecretsManager::Secret":
                    t.problem(f"{name}: {variable} must be !Ref <an AWS::SecretsManager::Secret in this template>")
        if "MAX_RECEIVE_COUNT" in variables:
            queues = [queue for _w, fn, _p, queue in sources if fn == name and queue]
            for queue in queues:
                if redrive_of.get(queue) != variables["MAX_RECEIVE_COUNT"]:
                    t.problem(
                        f"{name}: MAX_RECEIVE_COUNT {variables['MAX_RECEIVE_COUNT']!r} differs from {queue}'s "
                        f"maxReceiveCount {redrive_of.get(queue)!r}"
                    )
        if "ICARE_MAX_ATTEMPTS" in variables:
            attempts = t.default_number(variables["ICARE_MAX_ATTEMPTS"], f"{name}.ICARE_MAX_ATTEMPTS")
            for _w, fn, _p, queue in sources:
                if fn == name and queue:
                    receives = t.default_number(redrive_of.get(queue), f"{queue}.maxReceiveCount")
                    if attempts is not None and receives is not None and attempts >= receives:
                        t.problem(
                            f"{name}: ICARE_MAX_ATTEMPTS {attempts} must be below {queue}'s maxReceiveCount {receives} "
                            "(the function gives up and records the failure before SQS dead-letters the message)"
                        )


def check_routes(t: Template) -> None:
    routes = t.of_type("AWS::ApiGatewayV2::Route")
    if not routes:
        t.problem("no AWS::ApiGatewayV2::Route: the HTTP API has no routes")
    integrations = t.of_type("AWS::ApiGatewayV2::Integration")
    permitted = {
        t.target(t.props(name).get("FunctionName"))
        for name, permission in t.of_type("AWS::Lambda::Permission").items()
        if t.props(name).get("Principal") == "apigateway.amazonaws.com"
    }
    for name, route in routes.items():
        props = route.get("Properties") or {}
        key = props.get("RouteKey")
        auth = props.get("AuthorizationType")
        if key != WEBHOOK_ROUTE and auth != "JWT":
            t.problem(f"{name}: route {key!r} has AuthorizationType {auth!r}; every route but {WEBHOOK_ROUTE} needs JWT")
        if auth == "JWT":
            authorizer = t.target(props.get("AuthorizerId"))
            if authorizer is None or (t.resources.get(authorizer) or {}).get("Type") != "AWS::ApiGatewayV2::Authorizer":
                t.problem(f"{name}: AuthorizationType JWT needs AuthorizerId !Ref <an AWS::ApiGatewayV2::Authorizer>")
        target = props.get("Target")
        text = target.get("Fn::Sub") if isinstance(target, dict) else target
        match = re.fullmatch(r"integrations/\$\{([A-Za-z0-9]+)\}", text) if isinstance(text, str) else None
        if not match or match.group(1) not in integrations:
            t.problem(f"{name}: Target must be !Sub integrations/${{<an AWS::ApiGatewayV2::Integration>}}")
            continue
        function = t.target(t.props(match.group(1)).get("IntegrationUri"))
        if function not in permitted:
            t.problem(f"{name}: no AWS::Lambda::Permission lets API Gateway invoke {function}")


RULES: list[tuple[str, Callable[[Template], None]]] = [
    ("SQS event sources", check_sqs_event_sources),
    ("redrive policies", check_redrive),
    ("visibility timeouts", check_visibility),
    ("references in Environment and Policies", check_references),
    ("functions", check_functions),
    ("HTTP API routes", check_routes),
]


def run(data: dict, path: Path) -> list[str]:
    t = Template(data, path)
    for _title, rule in RULES:
        rule(t)
    return t.problems


# ------------------------------------------------------------------ self-test


def _first(t: dict, kind: str, predicate: Callable[[dict], bool] = lambda r: True) -> dict:
    for resource in t["Resources"].values():
        if isinstance(resource, dict) and resource.get("Type") == kind and predicate(resource):
            return resource
    raise LookupError(f"self-test: the template has no {kind} to break")


def _poster(t: dict) -> dict:
    return _first(
        t,
        "AWS::Serverless::Function",
        lambda r: ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary") == POSTER_BINARY,
    )


def _sqs_event(t: dict) -> dict:
    return next(e["Properties"] for e in _poster(t)["Properties"]["Events"].values() if e.get("Type") == "SQS")


def _work_queue(t: dict) -> dict:
    name = _sqs_event(t)["Queue"]["Fn::GetAtt"][0]
    return t["Resources"][name]


def _set_receives(t: dict, value: Any) -> None:
    _work_queue(t)["Properties"]["RedrivePolicy"]["maxReceiveCount"] = value


def _dlq_retention(t: dict) -> None:
    dlq = _work_queue(t)["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    t["Resources"][dlq]["Properties"]["MessageRetentionPeriod"] = _work_queue(t)["Properties"].get(
        "MessageRetentionPeriod", SQS_DEFAULT_RETENTION
    )


def _env(t: dict) -> dict:
    return _poster(t)["Properties"]["Environment"]["Variables"]


def _role_statement(t: dict) -> dict:
    role = _first(t, "AWS::IAM::Role")
    return role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]


def _jwt_route(t: dict) -> dict:
    return _first(t, "AWS::ApiGatewayV2::Route", lambda r: r["Properties"].get("RouteKey") != WEBHOOK_ROUTE)


BREAKS: list[tuple[str, Callable[[dict], None]]] = [
    ("misspelt FunctionResponseTypes", lambda t: _sqs_event(t).update(FunctionResponseTypes=["ReportBatchItemFailure"])),
    ("FunctionResponseTypes missing", lambda t: _sqs_event(t).pop("FunctionResponseTypes")),
    ("MaximumConcurrency 1", lambda t: _sqs_event(t).update(ScalingConfig={"MaximumConcurrency": 1})),
    ("maxReceiveCount 3", lambda t: _set_receives(t, 3)),
    ("maxReceiveCount 1000", lambda t: _set_receives(t, 1000)),
    ("maxReceiveCount parameter with a low MinValue", lambda t: (
        _set_receives(t, {"Ref": "SelfTestReceives"}),
        t["Parameters"].update(SelfTestReceives={"Type": "Number", "Default": 8, "MinValue": 1, "MaxValue": 10}),
    )),
    ("DLQ retention not longer", _dlq_retention),
    ("visibility below 6 x timeout", lambda t: _work_queue(t)["Properties"].update(VisibilityTimeout=60)),
    ("Ref to a missing resource in Environment", lambda t: _env(t).update(SELF_TEST={"Ref": "NoSuchQueue"})),
    ("GetAtt to a missing resource in Environment", lambda t: _env(t).update(SELF_TEST={"Fn::GetAtt": ["NoSuchQueue", "Arn"]})),
    ("Sub of a missing name in Environment", lambda t: _env(t).update(SELF_TEST={"Fn::Sub": "https://${NoSuchApi}/x"})),
    ("Ref to a missing resource in a role policy", lambda t: _role_statement(t).update(Resource={"Fn::GetAtt": ["NoSuchTable", "Arn"]})),
    ("x86_64 architecture", lambda t: _poster(t)["Properties"].update(Architectures=["x86_64"])),
    ("provided.al2 runtime", lambda t: _poster(t)["Properties"].update(Runtime="provided.al2")),
    ("BuildMethod makefile", lambda t: _poster(t)["Metadata"].update(BuildMethod="makefile")),
    ("unknown Binary", lambda t: _poster(t)["Metadata"]["BuildProperties"].update(Binary="no-such-crate")),
    ("a secret passed by value", lambda t: _env(t).update(HICAPS_CLIENT_SECRET="hunter2")),
    ("MAX_RECEIVE_COUNT differs from the queue", lambda t: _env(t).update(MAX_RECEIVE_COUNT="3")),
    ("route without the JWT authorizer", lambda t: _jwt_route(t)["Properties"].update(AuthorizationType="NONE")),
    ("no API Gateway permission", lambda t: [
        t["Resources"].pop(name)
        for name, r in list(t["Resources"].items())
        if r.get("Type") == "AWS::Lambda::Permission"
    ]),
]


def self_test(data: dict, path: Path) -> list[str]:
    failures = []
    baseline = run(copy.deepcopy(data), path)
    if baseline:
        failures.append("the template itself breaks rules, so the self-test cannot tell breaks apart: " + "; ".join(baseline))
        return failures
    for title, breaker in BREAKS:
        broken = copy.deepcopy(data)
        try:
            breaker(broken)
        except (LookupError, KeyError, TypeError, StopIteration) as error:
            failures.append(f"self-test '{title}': could not break the template ({error!r})")
            continue
        if not run(broken, path):
            failures.append(f"self-test '{title}': the break went unnoticed")
    return failures


# ------------------------------------------------------------------ main


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--self-test"]
    if len(args) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        data = load(path)
    except (OSError, yaml.YAMLError, ValueError) as error:
        print(f"check_template: cannot read {path}: {error}", file=sys.stderr)
        return 2
    if "--self-test" in argv:
        failures = self_test(data, path)
        for failure in failures:
            print(f"check_template: {failure}", file=sys.stderr)
        if failures:
            return 1
        print(f"check_template: self-test OK ({len(BREAKS)} breaks caught)")
        return 0
    problems = run(data, path)
    for problem in problems:
        print(f"check_template: {path}: {problem}", file=sys.stderr)
    if problems:
        print(f"check_template: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_template: {path}: OK ({len(RULES)} rule groups)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
