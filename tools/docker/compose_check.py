"""Checks the Docker description of the dev stack (//tools/docker:compose_test).

  compose_check.py CONFIG DOCKERFILE DOCKERIGNORE SCRIPTS_DIR

CONFIG is `docker-compose config` output (the compose file normalized: anchors merged, ports and
lists in one form). Prints one line per problem and exits 1 if there is any, else prints
"compose ok". The properties, each a function below:

  - every component of tools/devstack/devstack.sh has its service, running the right binary;
  - only the relay and the cloud publish ports (the gateway and the agents only dial out);
  - no environment entry and no command-line value looks like a secret, and no --insecure;
  - servers listen on 0.0.0.0 inside their containers;
  - each `agent run` / `gateway run` waits for the one-shot service that enrolled its data dir;
  - every Tether binary the compose file or its container scripts run is in the Dockerfile's
    `bazel build` target list, and every container script it runs is copied into the image;
  - .dockerignore keeps bazel-* and .git out of the build context.

Runs with Debian's /usr/bin/python3: PyYAML is there because docker-compose depends on it.
"""

import re
import sys

import yaml

STATE_DIR = "/var/lib/tether"
BIN_DIR = "/usr/local/lib/tether"
SCRIPT_DIR = "/usr/local/libexec/tether"

# service -> (binary, subcommand or None, must it pass --via-gateway)
COMPONENTS = {
    "init": ("init.sh", None, None),
    "relay": ("relay_server", None, None),
    "cloud": ("cloud_server", None, None),
    "gateway": ("gateway", "run", None),
    "agent-direct": ("agent", "run", False),
    "agent-gateway": ("agent", "run", True),
}
PUBLISHERS = {"relay", "cloud"}
LISTEN_FLAGS = {"--listen", "--http_listen", "--local_relay_listen", "--service_listen"}

SECRET_NAME = re.compile(r"token|secret|passw|key|credential|auth|cert", re.I)
API_TOKEN = re.compile(r"\btt_[A-Za-z0-9_-]{8,}")  # the cloud's API tokens
HEX_KEY = re.compile(r"\b[0-9a-fA-F]{32,}\b")  # SAS keys, recovery keys, passwords (init.sh)
BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")


def looks_secret(text):
    """Whether text holds something like key material: an API token, a long hex run, or a long
    base64 run mixing upper case, lower case and digits (paths and host names here do not)."""
    if API_TOKEN.search(text) or HEX_KEY.search(text):
        return True
    return any(re.search("[a-z]", run) and re.search("[A-Z]", run) and re.search("[0-9]", run)
               for run in BASE64_RUN.findall(text))


def command_of(service):
    """The service's command as a list (entrypoint overrides included), [] when none."""
    entrypoint = service.get("entrypoint") or []
    command = service.get("command") or []
    if isinstance(entrypoint, str):
        entrypoint = entrypoint.split()
    if isinstance(command, str):
        command = command.split()
    words = [str(w) for w in entrypoint + command]
    if words and words[0] == f"{SCRIPT_DIR}/entrypoint.sh":
        words = words[1:]
    return words


def program_of(words):
    """(binary name, its arguments) of a command, through enroll_once.sh."""
    if len(words) >= 3 and words[0] == f"{SCRIPT_DIR}/enroll_once.sh":
        words = words[2:]
    if not words:
        return "", []
    return words[0].rsplit("/", 1)[-1], words[1:]


def flags_of(args):
    flags = {}
    for arg in args:
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            flags[name.replace("-", "_").replace("__", "--", 1)] = value
    return flags


def subcommand_of(args):
    positional = [a for a in args if not a.startswith("--")]
    return positional[0] if positional else None


def strings_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)
    elif node is not None:
        yield str(node)


def check_components(services):
    errors = []
    for name, (binary, subcommand, via_gateway) in COMPONENTS.items():
        if name not in services:
            errors.append(f"no service named {name} (it runs {binary})")
            continue
        program, args = program_of(command_of(services[name]))
        if program != binary or subcommand_of(args) != subcommand:
            runs = " ".join(filter(None, [program, subcommand_of(args)]))
            want = " ".join(filter(None, [binary, subcommand]))
            errors.append(f"service {name} runs {runs}, want {want}")
        if via_gateway is not None and ("--via_gateway" in flags_of(args)) != via_gateway:
            errors.append(f"service {name}: --via-gateway {'missing' if via_gateway else 'set'}")
    return errors


def check_ports(services):
    errors = []
    for name, service in services.items():
        if service.get("ports") and name not in PUBLISHERS:
            errors.append(f"service {name} publishes ports {service['ports']}: only "
                          f"{' and '.join(sorted(PUBLISHERS))} may (agents and gateway dial out)")
        if service.get("network_mode") == "host":
            errors.append(f"service {name} uses the host's network")
    for name in PUBLISHERS:
        if name in services and not services[name].get("ports"):
            errors.append(f"service {name} publishes no port")
    return errors


def check_secrets(services):
    errors = []
    for name, service in services.items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(e.partition("=")[::2] for e in environment)
        for key, value in environment.items():
            value = "" if value is None else str(value)
            if SECRET_NAME.search(key) and not value.startswith("/"):
                errors.append(f"service {name}: environment {key} looks like a secret "
                              "(secrets are 0600 files in the state volume)")
            elif looks_secret(value):
                errors.append(f"service {name}: environment {key} has a secret-looking value")
        # build: docker-compose config resolves the context to this machine's absolute path.
        for text in strings_in({k: v for k, v in service.items() if k not in ("environment", "build")}):
            if looks_secret(text):
                errors.append(f"service {name}: secret-looking value in {text!r}")
        words = command_of(service)
        for flag, value in flags_of(program_of(words)[1]).items():
            if flag == "--insecure":
                errors.append(f"service {name} passes --insecure (use the dev certificates)")
            elif SECRET_NAME.search(flag) and value and not value.startswith(STATE_DIR + "/"):
                errors.append(f"service {name}: {flag} is not a file in {STATE_DIR}")
    return errors


def check_listen(services):
    errors = []
    for name, service in services.items():
        for flag, value in flags_of(program_of(command_of(service))[1]).items():
            if flag in LISTEN_FLAGS and not value.startswith("0.0.0.0:"):
                errors.append(f"service {name}: {flag}={value} (listen on 0.0.0.0 in containers)")
    return errors


def check_enrolment(services):
    """`agent run` and `gateway run` wait for the service that enrolled their data directory."""
    errors = []
    enrolls = {}  # data dir -> enrolling services
    for name, service in services.items():
        program, args = program_of(command_of(service))
        if (program, subcommand_of(args)) in {("agent", "register"), ("gateway", "create-cluster"),
                                              ("gateway", "join-cluster")}:
            enrolls.setdefault(flags_of(args).get("--data_dir"), set()).add(name)
    for name, service in services.items():
        program, args = program_of(command_of(service))
        if program not in {"agent", "gateway"} or subcommand_of(args) != "run":
            continue
        data_dir = flags_of(args).get("--data_dir")
        waits_for = {dep for dep, how in (service.get("depends_on") or {}).items()
                     if isinstance(how, dict) and how.get("condition") == "service_completed_successfully"}
        if not enrolls.get(data_dir, set()) & waits_for:
            errors.append(f"service {name} runs {program} run on {data_dir} without waiting "
                          "(service_completed_successfully) for a service that enrolls it")
        if not service.get("healthcheck"):
            errors.append(f"service {name} has no healthcheck")
    for name in ("relay", "cloud"):
        if name in services and not services[name].get("healthcheck"):
            errors.append(f"service {name} has no healthcheck")
    return errors


def dockerfile_instructions(text):
    """(instruction, arguments) pairs, continuation lines joined and comments dropped."""
    joined, pending = [], ""
    for line in text.splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    for line in joined:
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            yield instruction.upper(), rest.strip()


def dockerfile_facts(text):
    """The binary names `bazel build` builds and the files COPY puts into SCRIPT_DIR."""
    args, targets, copied, errors = {}, None, set(), []
    for instruction, rest in dockerfile_instructions(text):
        if instruction == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip().strip('"')
        elif instruction == "RUN" and "bazel build" in rest:
            expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest)
            words = expanded.split("bazel build", 1)[1].split("&&")[0].split()
            labels = [w for w in words if w.startswith("//")]
            targets = set()
            for label in labels:
                if not re.fullmatch(r"//[\w/]+:\w+", label):
                    errors.append(f"Dockerfile: write {label} as //package:name (the install loop "
                                  "takes the binary's path from it)")
                targets.add(label.rsplit(":", 1)[-1])
        elif instruction == "COPY":
            words = rest.split()
            if words and words[-1].rstrip("/") == SCRIPT_DIR:
                copied |= {w.rsplit("/", 1)[-1] for w in words[:-1] if not w.startswith("--")}
    if targets is None:
        errors.append("Dockerfile: no `bazel build` step")
        targets = set()
    return targets, copied, errors


def check_image(services, dockerfile, scripts_dir):
    targets, copied, errors = dockerfile_facts(dockerfile)
    entrypoints = [rest for instruction, rest in dockerfile_instructions(dockerfile)
                   if instruction == "ENTRYPOINT"]
    text = "\n".join(list(strings_in(services)) + entrypoints)
    used = {m: "docker-compose.yml" for m in re.findall(re.escape(BIN_DIR) + r"/(\w+)", text)}
    for script in sorted(set(re.findall(re.escape(SCRIPT_DIR) + r"/([\w.-]+)", text))):
        if script not in copied:
            errors.append(f"{SCRIPT_DIR}/{script} is run but the Dockerfile does not copy it "
                          f"there")
        try:
            with open(f"{scripts_dir}/{script}") as f:
                body = f.read()
        except OSError:
            errors.append(f"{SCRIPT_DIR}/{script} is run but is not in tools/docker")
            continue
        for binary in re.findall(r"\$\{?bin\}?/(\w+)", body):
            used.setdefault(binary, f"tools/docker/{script}")
    for binary, where in sorted(used.items()):
        if binary not in targets:
            errors.append(f"{where} runs {binary}, which the Dockerfile's bazel build does not "
                          f"build (targets: {' '.join(sorted(targets))})")
    return errors


def check_dockerignore(text):
    patterns = {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
    return [f".dockerignore: {p} is not excluded" for p in ("bazel-*", ".git") if p not in patterns]


def main(argv):
    if len(argv) != 5:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    config_path, dockerfile_path, dockerignore_path, scripts_dir = argv[1:]
    with open(config_path) as f:
        services = (yaml.safe_load(f) or {}).get("services") or {}
    with open(dockerfile_path) as f:
        dockerfile = f.read()
    with open(dockerignore_path) as f:
        dockerignore = f.read()
    errors = (check_components(services) + check_ports(services) + check_secrets(services) +
              check_listen(services) + check_enrolment(services) +
              check_image(services, dockerfile, scripts_dir) + check_dockerignore(dockerignore))
    for error in errors:
        print(error)
    if errors:
        return 1
    print("compose ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
