"""kubectl-phd's Tutor plugin: Open edX manifests for Argo CD with no secret in them.

kubectl-phd renders every instance with Tutor, tutor-contrib-drydock and this plugin
(`kubectl phd instance create|update`). The plugin:

- replaces every credential Tutor would write into the environment (Django secret key,
  JWT signing key, OAuth2 client secret, Meilisearch keys, database passwords) by a
  reference `${PHD_...}`. Shell commands of the init jobs expand it, and the settings of
  LMS and CMS resolve it from the process environment when they load. Containers get
  those variables from the instance's Secret (`PHD_CREDENTIALS_SECRET`) through
  `secretKeyRef`, so neither config.yml nor env/ holds a secret value;
- turns Tutor's init tasks into Argo CD sync hooks (Drydock's `DRYDOCK_INIT_JOBS`),
  without the MySQL and MongoDB tasks, whose work kubectl-phd's provisioning workflows
  do with admin credentials that never reach the instance namespace;
- adds an Ingress for every host Caddy serves to browsers (read from the rendered
  Caddyfile: LMS, Studio, MFEs, Meilisearch's public host, any plugin's), with TLS
  from a cert-manager ClusterIssuer (`PHD_INGRESS_CLASS`, `PHD_CLUSTER_ISSUER`) and
  ingress-nginx's body limit raised to Caddy's for that host;
- leaves the Namespace out of the manifests: kubectl-phd owns it (it holds the
  credentials and is deleted only after deprovisioning), so Argo CD can neither
  prune nor delete it;
- `tutor phd secrets` prints, as JSON, freshly generated values of the secrets Tutor
  would generate, made with Tutor's own generators; kubectl-phd stores them in the
  instance's Secret once.

Written for Tutor 20 to 22 and the Drydock release of the same major version.
"""

from __future__ import annotations

import json
import re
import typing as t

import click
import jinja2
from tutor import config as tutor_config
from tutor import hooks, utils

# Tutor setting -> (environment variable, key of the credentials Secret).
# Source of the list: the values Tutor generates in tutor/templates/config/base.yml,
# and the database passwords kubectl-phd provisions.
CREDENTIALS: dict[str, tuple[str, str]] = {
    "OPENEDX_SECRET_KEY": ("PHD_OPENEDX_SECRET_KEY", "openedx-secret-key"),
    "JWT_RSA_PRIVATE_KEY": ("PHD_JWT_RSA_PRIVATE_KEY", "jwt-rsa-private-key"),
    "CMS_OAUTH2_SECRET": ("PHD_CMS_OAUTH2_SECRET", "cms-oauth2-secret"),
    "MEILISEARCH_MASTER_KEY": ("PHD_MEILISEARCH_MASTER_KEY", "meilisearch-master-key"),
    "MEILISEARCH_API_KEY": ("PHD_MEILISEARCH_API_KEY", "meilisearch-api-key"),
    "OPENEDX_MYSQL_PASSWORD": ("PHD_MYSQL_PASSWORD", "mysql-password"),
    "MONGODB_PASSWORD": ("PHD_MONGODB_PASSWORD", "mongodb-password"),
    # The SMTP relay's password (empty without one): `kubectl phd instance
    # update NAME --smtp-password-stdin` or PHD_SMTP_PASSWORD at create.
    "SMTP_PASSWORD": ("PHD_SMTP_PASSWORD", "smtp-password"),
}
# Settings Tutor generates that no container of a phd instance uses (the MySQL
# server is not run by Tutor); replaced so that nothing random is rendered.
UNUSED = {"MYSQL_ROOT_PASSWORD": "PHD_UNUSED_MYSQL_ROOT_PASSWORD"}

# Containers that load the Open edX settings: (kind, name regex or label selector, container).
OPENEDX_DEPLOYMENTS = ["lms", "cms", "lms-worker", "cms-worker"]


def reference(variable: str) -> str:
    return "${" + variable + "}"


hooks.Filters.CONFIG_DEFAULTS.add_items(
    [
        ("PHD_CREDENTIALS_SECRET", "phd-instance-credentials"),
        ("PHD_INGRESS_CLASS", "nginx"),
        ("PHD_CLUSTER_ISSUER", "letsencrypt"),
        ("PHD_IMAGE_PULL_SECRET", ""),
    ]
)
# User-level values beat config.yml and Tutor's generated base values, so no
# secret is generated into the rendering and none can be set in config.yml.
hooks.Filters.CONFIG_USER.add_items(
    [(setting, reference(variable)) for setting, (variable, _) in CREDENTIALS.items()]
    + [(setting, reference(variable)) for setting, variable in UNUSED.items()]
)


class _KeyReference:
    """Stands for the JWT key while rendering: every number is 0, and the settings
    build the real JSON web keys from PHD_JWT_RSA_PRIVATE_KEY when they load."""

    e = d = n = p = q = dq = dp = invq = u = 0


def _rsa_import_key(key: str) -> t.Any:
    if key.strip() == reference(CREDENTIALS["JWT_RSA_PRIVATE_KEY"][0]):
        return _KeyReference()
    return utils.rsa_import_key(key)


hooks.Filters.ENV_TEMPLATE_FILTERS.add_item(("rsa_import_key", _rsa_import_key))

# Drydock: init tasks as Argo CD sync hooks, no Drydock ingress or issuer (this
# plugin adds its own for a ClusterIssuer), without the tasks that need database
# admin credentials.
hooks.Filters.CONFIG_OVERRIDES.add_items(
    [
        ("DRYDOCK_INIT_JOBS", True),
        ("DRYDOCK_INIT_JOBS_EXCLUDED", ["mysql-job", "mongodb-job"]),
        ("DRYDOCK_INGRESS", False),
        ("DRYDOCK_AUTO_TLS", False),
    ]
)

SETTINGS = """
# kubectl-phd: credentials from the environment (Secret {{ PHD_CREDENTIALS_SECRET }}).
def _phd_resolve_credentials(namespace):
    import base64 as _base64
    import json as _json
    import os as _os
    import re as _re

    pattern = _re.compile(r"\\$\\{(PHD_[A-Z0-9_]+)\\}")

    def lookup(match):
        name = match.group(1)
        if name not in _os.environ:
            raise RuntimeError(
                "%s is not set: the container lacks the kubectl-phd credentials" % name
            )
        return _os.environ[name]

    def resolve(value):
        if isinstance(value, str):
            return pattern.sub(lookup, value) if "$" in value else value
        if isinstance(value, dict):
            for key in list(value):
                value[key] = resolve(value[key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                value[index] = resolve(item)
        elif isinstance(value, tuple):
            return type(value)(resolve(item) for item in value) if not hasattr(value, "_fields") else value
        return value

    for name in [name for name in namespace if name.isupper()]:
        namespace[name] = resolve(namespace[name])

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(_os.environ["PHD_JWT_RSA_PRIVATE_KEY"].encode(), password=None)
    numbers = key.private_numbers()

    def b64(number):
        data = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return _base64.urlsafe_b64encode(data).decode().rstrip("=")

    public = {"kid": "openedx", "kty": "RSA", "e": b64(numbers.public_numbers.e), "n": b64(numbers.public_numbers.n)}
    private = dict(
        public,
        d=b64(numbers.d), p=b64(numbers.p), q=b64(numbers.q),
        dq=b64(numbers.dmq1), dp=b64(numbers.dmp1), qi=b64(numbers.iqmp),
    )
    namespace["JWT_AUTH"]["JWT_PRIVATE_SIGNING_JWK"] = _json.dumps(private)
    namespace["JWT_AUTH"]["JWT_PUBLIC_SIGNING_JWK_SET"] = _json.dumps({"keys": [public]})


_phd_resolve_credentials(globals())
del _phd_resolve_credentials
"""


def _env_patch(container_path: str) -> str:
    """JSON patch operations that give a container every credential variable."""
    operations = [
        {
            "op": "add",
            "path": f"{container_path}/env/-",
            "value": {
                "name": variable,
                "valueFrom": {
                    "secretKeyRef": {"name": "{{ PHD_CREDENTIALS_SECRET }}", "key": key}
                },
            },
        }
        for variable, key in CREDENTIALS.values()
    ]
    return json.dumps(operations)


def _patch_entry(target: str, patch: str) -> str:
    """One entry of kustomization.yml's `patches`: `target` is the YAML of the
    target's fields (indented for continuation lines), `patch` JSON text."""
    return "- target:\n    " + target + "\n  patch: '" + patch + "'"


def _kustomization_patches() -> str:
    lines = []
    for name in OPENEDX_DEPLOYMENTS:
        lines.append(
            _patch_entry(f"kind: Deployment\n    name: {name}", _env_patch("/spec/template/spec/containers/0"))
        )
    # Drydock's init jobs (every one of them runs an Open edX or plugin image
    # whose command may read a credential).
    lines.append(
        _patch_entry(
            "kind: Job\n    labelSelector: app.kubernetes.io/component=drydock-job",
            _env_patch("/spec/template/spec/containers/0"),
        )
    )
    meilisearch = [
        {"op": "test", "path": "/spec/template/spec/containers/0/env/0/name", "value": "MEILI_MASTER_KEY"},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/env/0",
            "value": {
                "name": "MEILI_MASTER_KEY",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": "{{ PHD_CREDENTIALS_SECRET }}",
                        "key": CREDENTIALS["MEILISEARCH_MASTER_KEY"][1],
                    }
                },
            },
        },
    ]
    lines.append("{% if RUN_MEILISEARCH %}")
    lines.append(_patch_entry("kind: Deployment\n    name: meilisearch", json.dumps(meilisearch)))
    lines.append("{% endif %}")
    # The Namespace belongs to kubectl-phd, which made it before provisioning
    # and deletes it after deprovisioning: Argo CD never prunes or deletes it.
    namespace = {
        "$patch": "delete",
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "{{ K8S_NAMESPACE }}"},
    }
    lines.append(_patch_entry("kind: Namespace", json.dumps(namespace)))
    # Private images: every workload pulls with the image pull Secret.
    pull_secret = json.dumps(
        [
            {
                "op": "add",
                "path": "/spec/template/spec/imagePullSecrets",
                "value": [{"name": "{{ PHD_IMAGE_PULL_SECRET }}"}],
            }
        ]
    )
    lines.append("{% if PHD_IMAGE_PULL_SECRET %}")
    for kind in ["Deployment", "Job"]:
        lines.append(_patch_entry(f"kind: {kind}", pull_secret))
    lines.append("{% endif %}")
    return "\n".join(lines)


# Caddy's size units (github.com/dustin/go-humanize's ParseBytes, which Caddy's
# `request_body max_size` uses): decimal without "i", binary with it.
_CADDY_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "ki": 2**10,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mi": 2**20,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gi": 2**30,
    "gib": 2**30,
}
_CADDY_SIZE = re.compile(r"^\s*max_size\s+([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
# Placeholders such as {$default_site_port} or {args.0}: braces that open no block.
_CADDY_PLACEHOLDER = re.compile(r"\{[^\s{}]*\}")


def caddy_sites(caddyfile: str) -> list[tuple[str, int]]:
    """The hosts of a Caddyfile's site blocks, in order, each with the largest
    `request_body max_size` of its block in bytes (0: the block sets none).

    Skips the global options block, snippets `(name) {...}` and sites whose
    address has no host (`:80`, `{$default_site_port:80}`). Addresses may carry
    a scheme and a port (`https://host:443`); only the host is kept, lower-case,
    once. Raises ValueError on an unbalanced brace or a size Caddy would not
    accept, so a render never silently drops a site.
    """
    sites: dict[str, int] = {}
    depth = 0
    current: list[str] = []
    for number, raw in enumerate(caddyfile.splitlines(), start=1):
        line = raw.split("#", 1)[0] if raw.lstrip().startswith("#") else raw
        bare = _CADDY_PLACEHOLDER.sub("", line)
        if depth == 0 and bare.rstrip().endswith("{"):
            address = line.rstrip()[:-1].strip()
            current = []
            if address and not address.startswith("("):
                for token in re.split(r"[\s,]+", address):
                    host = _CADDY_PLACEHOLDER.sub("", token.split("://")[-1])
                    host = host.rsplit(":", 1)[0] if ":" in host else host
                    host = host.lower()
                    if host:
                        current.append(host)
                        sites.setdefault(host, 0)
        elif depth > 0 and current:
            size = _CADDY_SIZE.match(bare)
            if size:
                unit = size.group(2).lower()
                if unit not in _CADDY_UNITS:
                    raise ValueError(f"Caddyfile line {number}: unknown size unit {size.group(2)!r}")
                limit = int(float(size.group(1)) * _CADDY_UNITS[unit])
                for host in current:
                    sites[host] = max(sites[host], limit)
        depth += bare.count("{") - bare.count("}")
        if depth < 0:
            raise ValueError(f"Caddyfile line {number}: unbalanced closing brace")
    if depth != 0:
        raise ValueError("Caddyfile: unbalanced braces at the end")
    return list(sites.items())


@jinja2.pass_context
def _browser_sites(context: t.Any, caddyfile: str) -> list[tuple[str, str, int]]:
    """(Ingress name, host, body limit in bytes or 0) of every site the rendered
    Caddyfile serves. The hosts Tutor and its plugins define keep stable names
    (so their TLS Secrets survive a re-render); any other gets its host with
    dashes for dots."""
    named = {}
    for name, setting in [
        ("lms", "LMS_HOST"),
        ("cms", "CMS_HOST"),
        ("mfe", "MFE_HOST"),
    ]:
        value = context.get(setting)
        if isinstance(value, str) and value:
            named.setdefault(value.lower(), name)
    public = context.get("MEILISEARCH_PUBLIC_URL")
    if isinstance(public, str) and "://" in public:
        named.setdefault(public.split("://", 1)[1].split("/")[0].split(":")[0].lower(), "meilisearch")
    return [
        (named.get(host, host.replace(".", "-").replace("*", "wildcard")), host, limit)
        for host, limit in caddy_sites(caddyfile)
    ]


hooks.Filters.ENV_TEMPLATE_VARIABLES.add_item(("phd_browser_sites", _browser_sites))

# One Ingress per site Caddy serves to browsers (read from the rendered
# Caddyfile, so Meilisearch's public host and every plugin's host are included,
# and a host Caddy does not serve gets none), with TLS and, for ingress-nginx,
# the largest request body Caddy accepts on that host, rounded up to MiB, the
# unit nginx and Traefik's ingress-nginx provider both read (nginx's default is
# 1 MiB; Traefik's own Ingress provider sets no limit). Caddy still applies its
# finer per-path limits.
INGRESS = """
{%- set phd_caddyfile %}{% include "apps/caddy/Caddyfile" %}{% endset %}
{%- for name, host, body_limit in phd_browser_sites(phd_caddyfile) %}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ name }}
  labels:
    app.kubernetes.io/name: {{ name }}
    app.kubernetes.io/component: ingress
  annotations:
    cert-manager.io/cluster-issuer: {{ PHD_CLUSTER_ISSUER }}
    {%- if body_limit %}
    nginx.ingress.kubernetes.io/proxy-body-size: "{{ ((body_limit + 1048575) // 1048576) }}m"
    {%- endif %}
spec:
  ingressClassName: {{ PHD_INGRESS_CLASS }}
  tls:
    - hosts:
        - {{ host }}
      secretName: {{ name }}-tls
  rules:
    - host: {{ host }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: caddy
                port:
                  number: 80
{%- endfor %}
"""

hooks.Filters.ENV_PATCHES.add_items(
    [
        ("openedx-lms-production-settings", SETTINGS),
        ("openedx-cms-production-settings", SETTINGS),
        ("openedx-lms-development-settings", SETTINGS),
        ("openedx-cms-development-settings", SETTINGS),
        ("kustomization-patches", _kustomization_patches()),
        ("k8s-services", INGRESS),
    ]
)


@click.group(name="phd", help="kubectl-phd's commands")
def command() -> None:
    pass


@command.command(name="secrets", help="Print newly generated values of Tutor's secrets as JSON")
@click.pass_obj
def secrets(context: t.Any) -> None:
    # The same generators as tutor/templates/config/base.yml.
    master_key = utils.random_string(24)
    uid = tutor_config.load(context.root).get("MEILISEARCH_API_KEY_UID", "")
    if not uid:
        raise click.ClickException("MEILISEARCH_API_KEY_UID is not set in config.yml")
    values = {
        CREDENTIALS["OPENEDX_SECRET_KEY"][1]: utils.random_string(24),
        CREDENTIALS["JWT_RSA_PRIVATE_KEY"][1]: utils.rsa_private_key(2048),
        CREDENTIALS["CMS_OAUTH2_SECRET"][1]: utils.random_string(24),
        CREDENTIALS["MEILISEARCH_MASTER_KEY"][1]: master_key,
        CREDENTIALS["MEILISEARCH_API_KEY"][1]: utils.uid_master_hash(master_key, str(uid)),
    }
    click.echo(json.dumps(values))


hooks.Filters.CLI_COMMANDS.add_item(command)
