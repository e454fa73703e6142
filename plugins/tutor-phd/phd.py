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
- puts every Open edX file storage (Django's default storage, course import/export
  and user-task artifacts, grade reports, ORA2 uploads, profile images, video images
  and transcripts, Libraries v2 media, SCORM packages) on the instance's bucket
  (`STORAGE_*` of config.yml) through django-storages' S3 backend; the bucket's keys
  reach the containers as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the Secret;
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
from tutor import exceptions, hooks, utils

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


def _volume_suffix(image: str) -> str:
    """A DNS-label suffix naming `image`'s release: its tag (`v1.36.0` ->
    `v1-36-0`), else a short hash of the whole reference; at most 40
    characters, so `meilisearch-<suffix>` is a valid object name."""
    import hashlib
    import re

    tail = image.rsplit("/", 1)[-1]
    tag = tail.split("@", 1)[0].split(":", 1)[1] if ":" in tail.split("@", 1)[0] else ""
    suffix = re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")
    if not suffix or len(suffix) > 40:
        suffix = hashlib.sha256(image.encode()).hexdigest()[:12]
    return suffix


hooks.Filters.ENV_TEMPLATE_FILTERS.add_item(("phd_volume_suffix", _volume_suffix))

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

    # Only phd's own references: the names of the credentials it stores.
    pattern = _re.compile(r"\\$\\{(@PHD_VARIABLES@)\\}")

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
""".replace("@PHD_VARIABLES@", "|".join(sorted(variable for variable, _ in CREDENTIALS.values())))


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
    # One volume per Meilisearch release: its data format changes between
    # releases (Tutor 21 runs v1.8.4, Tutor 22 v1.36.0, which refuses the old
    # data and crash-loops, overhangio/tutor#1428), so an upgrade starts on a
    # new, empty volume; the CMS init hook reindexes Studio and the courses
    # on that sync, and Argo CD prunes the old volume.
    volume = "meilisearch-{{ DOCKER_IMAGE_MEILISEARCH | phd_volume_suffix }}"
    meilisearch.append(
        {"op": "test", "path": "/spec/template/spec/volumes/0/persistentVolumeClaim/claimName", "value": "meilisearch"}
    )
    meilisearch.append(
        {"op": "replace", "path": "/spec/template/spec/volumes/0/persistentVolumeClaim/claimName", "value": volume}
    )
    claim = [{"op": "replace", "path": "/metadata/name", "value": volume}]
    lines.append("{% if RUN_MEILISEARCH %}")
    lines.append(_patch_entry("kind: Deployment\n    name: meilisearch", json.dumps(meilisearch)))
    lines.append(_patch_entry("kind: PersistentVolumeClaim\n    name: meilisearch", json.dumps(claim)))
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


# The CMS init task reindexes Studio and every active course on each sync
# (Tutor's jobs/init/cms.sh), which takes hours on a large site, and Argo CD
# runs the init hooks on every sync. kubectl-phd runs that full reindex only
# when Meilisearch holds no document: a new instance, or a new Meilisearch
# volume after a release upgrade (see the volume named after its image);
# otherwise Open edX keeps its indexes current as courses are published. If
# Meilisearch cannot be asked, the reindex runs, as before.
REINDEX = (
    "./manage.py cms reindex_studio",
    "./manage.py cms reindex_course --active",
)
GUARDED_REINDEX = """# kubectl-phd: the full reindex only when Meilisearch holds no document.
documents=$(./manage.py cms shell -c "from django.conf import settings; import meilisearch; stats = meilisearch.Client(settings.MEILISEARCH_URL, settings.MEILISEARCH_MASTER_KEY).get_all_stats(); print(sum(index['numberOfDocuments'] for index in stats['indexes'].values()))" 2>/dev/null | tail -n 1) || documents=""
if [ "$documents" = "0" ] || [ -z "$documents" ]; then
  echo "Meilisearch holds no document (or cannot tell): reindexing Studio and the active courses"
  ./manage.py cms reindex_studio
  ./manage.py cms reindex_course --active
else
  echo "Meilisearch holds $documents documents: no full reindex on this sync"
fi"""


@hooks.Filters.CLI_DO_INIT_TASKS.add(priority=hooks.priorities.LOW)
def _guard_reindex(tasks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    guarded = []
    for service, command in tasks:
        if service == "cms" and all(line in command for line in REINDEX):
            command = command.replace(REINDEX[1], "").replace(REINDEX[0], GUARDED_REINDEX)
        guarded.append((service, command))
    return guarded


def _type_name(value: t.Any) -> str:
    return {bool: "true or false", int: "a number", float: "a number", str: "text", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


@hooks.Actions.CONFIG_LOADED.add()
def _check_setting_types(config: dict[str, t.Any]) -> None:
    """Every setting has the type of its default (Tutor's, a plugin's, or the
    generated base value): Tutor pastes numbers and booleans unquoted into
    Python settings and shell commands, so a port given as text would be code.
    kubectl-phd has already refused template syntax, quotes and `$` in values,
    so rendering a value (Tutor's render_full, before this runs) is the
    identity on anything a user wrote."""
    expected = dict(tutor_config.get_base())
    expected.update(tutor_config.get_defaults())
    for key, value in config.items():
        default = expected.get(key)
        if default is None or value is None:
            continue
        if isinstance(default, bool) or isinstance(value, bool):
            same = isinstance(default, bool) and isinstance(value, bool)
        elif isinstance(default, (int, float)):
            same = isinstance(value, (int, float))
        else:
            same = isinstance(value, type(default))
        if not same:
            raise exceptions.TutorError(
                f"setting {key} must be {_type_name(default)} (as Tutor's default {default!r}), not {_type_name(value)}"
            )


# Media on the instance's bucket. Every Open edX file storage goes to the bucket
# kubectl-phd provisions (config.yml: STORAGE_TYPE, STORAGE_REGION,
# STORAGE_BUCKET_NAME, STORAGE_ENDPOINT_URL) through django-storages' S3 backend,
# which the openedx image installs (edx-platform requirements/edx/base.txt). Names
# and lookups, read in the sources of the releases phd renders (Django 5.2 in
# both Ulmo and Verawood):
# - STORAGES["default"]: Django's default_storage, which ORA2's "django" backend
#   (openassessment/fileupload/backends/django_storage.py) and the SCORM xblock
#   (openedxscorm, without XBLOCK_SETTINGS["ScormXBlock"]["STORAGE_FUNC"]) use;
# - STORAGES["course_import_export"] and the legacy COURSE_IMPORT_EXPORT_STORAGE
#   (edx-platform's resolve_storage_backend);
# - STORAGES["user_task_artifacts"] and USER_TASKS_ARTIFACT_STORAGE
#   (django-user-tasks' user_tasks/conf.py get_storage);
# - STORAGES["profile_image"] and PROFILE_IMAGE_BACKEND ({"class", "options"});
# - STORAGES["video_image"], STORAGES["video_transcripts"] and VIDEO_IMAGE_SETTINGS,
#   VIDEO_TRANSCRIPTS_SETTINGS (STORAGE_CLASS, STORAGE_KWARGS; edxval's
#   utils.get_configured_storage);
# - GRADES_DOWNLOAD (STORAGE_CLASS, STORAGE_KWARGS with STORAGE_TYPE "": the
#   instructor task ReportStore.from_config);
# - OPENEDX_LEARNING["MEDIA"] (BACKEND, OPTIONS: openedx-core's media storage).
# The keys come from the environment only (boto3's AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, from the credentials Secret); no setting names them.
STORAGE_SECRET_KEYS = {
    "AWS_ACCESS_KEY_ID": "storage-access-key-id",
    "AWS_SECRET_ACCESS_KEY": "storage-secret-access-key",
}
# boto3 1.36 and later add CRC checksums to every upload and check them on
# downloads; DigitalOcean Spaces (and other S3-compatible stores) reject or lack
# them. "when_required" sends them only where S3 requires one.
STORAGE_CHECKSUM_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}
# Prefixes of the bucket, one per kind of file (lifecycle rules can target them).
# Course import/export and user-task artifacts share the default's prefix, where
# the older settings (a class path, built from the AWS_* settings) put them too.
STORAGE_LOCATIONS = {
    "default": "media",
    "course_import_export": "media",
    "user_task_artifacts": "media",
    "profile_image": "media/profile-images",
    "video_image": "media",
    "video_transcripts": "media",
    "grades": "grades",
    "openedx_learning": "openedx-learning",
}

STORAGE_SETTINGS = (
    """
# kubectl-phd: media on the instance's bucket {{ STORAGE_BUCKET_NAME }} ({{ STORAGE_TYPE }}).
def _phd_media_on_bucket(namespace):
    import os as _os

    for name, value in """
    + repr(STORAGE_CHECKSUM_ENV)
    + """.items():
        _os.environ.setdefault(name, value)

    storage_type = {{ STORAGE_TYPE|tojson }}
    region = {{ STORAGE_REGION|tojson }}
    endpoint = {{ STORAGE_ENDPOINT_URL|tojson }}
    bucket = {{ STORAGE_BUCKET_NAME|tojson }}
    if storage_type not in ("s3", "spaces"):
        raise RuntimeError("STORAGE_TYPE is %r in config.yml: expected s3 or spaces" % storage_type)
    if not bucket:
        raise RuntimeError("STORAGE_BUCKET_NAME is empty in config.yml: media has no bucket")
    # AWS S3 and Spaces address buckets by virtual host; another S3-compatible
    # store at an endpoint of its own (MinIO, ...) by path.
    custom = storage_type == "s3" and endpoint and ".amazonaws.com" not in endpoint
    addressing_style = "path" if custom else "virtual"
    if storage_type == "spaces" and not endpoint:
        endpoint = "https://%s.digitaloceanspaces.com" % region
    backend = "storages.backends.s3.S3Storage"
    common = {
        "bucket_name": bucket,
        "region_name": region or None,
        "endpoint_url": endpoint or None,
        "addressing_style": addressing_style,
        "signature_version": "s3v4",
        # No key in the settings: boto3 reads AWS_ACCESS_KEY_ID and
        # AWS_SECRET_ACCESS_KEY from the environment.
        "access_key": None,
        "secret_key": None,
        "security_token": None,
        # Private objects, handed to browsers as signed URLs.
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": False,
    }
    locations = """
    + repr(STORAGE_LOCATIONS)
    + """

    def options(kind, **extra):
        return dict(common, location=locations[kind], **extra)

    storages = dict(namespace.get("STORAGES") or {})
    for kind in ["default", "course_import_export", "user_task_artifacts", "video_image", "video_transcripts"]:
        storages[kind] = {"BACKEND": backend, "OPTIONS": options(kind)}
    # Profile images are replaced in place (edx-platform's OverwriteStorage).
    storages["profile_image"] = {"BACKEND": backend, "OPTIONS": options("profile_image", file_overwrite=True)}
    namespace["STORAGES"] = storages

    # The same storages for code that reads the older settings: a class path
    # (built with no argument, from the AWS_* settings below) or class + options.
    namespace.update(
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_REGION_NAME=common["region_name"],
        AWS_S3_ENDPOINT_URL=common["endpoint_url"],
        AWS_S3_ADDRESSING_STYLE=addressing_style,
        AWS_S3_SIGNATURE_VERSION="s3v4",
        AWS_S3_ACCESS_KEY_ID=None,
        AWS_S3_SECRET_ACCESS_KEY=None,
        AWS_DEFAULT_ACL=None,
        AWS_QUERYSTRING_AUTH=True,
        AWS_S3_FILE_OVERWRITE=False,
        AWS_LOCATION=locations["default"],
    )
    namespace["COURSE_IMPORT_EXPORT_STORAGE"] = backend
    namespace["USER_TASKS_ARTIFACT_STORAGE"] = backend
    for setting, kind in [("VIDEO_IMAGE_SETTINGS", "video_image"), ("VIDEO_TRANSCRIPTS_SETTINGS", "video_transcripts")]:
        value = dict(namespace.get(setting) or {})
        value["STORAGE_CLASS"] = backend
        value["STORAGE_KWARGS"] = options(kind)
        namespace[setting] = value
    if "PROFILE_IMAGE_BACKEND" in namespace:
        namespace["PROFILE_IMAGE_BACKEND"] = {
            "class": backend,
            "options": options("profile_image", file_overwrite=True),
        }
    namespace["GRADES_DOWNLOAD"] = {
        "STORAGE_TYPE": "",
        "STORAGE_CLASS": backend,
        "STORAGE_KWARGS": options("grades"),
    }
    # ORA2 through Django's default storage (the bucket above).
    namespace["ORA2_FILEUPLOAD_BACKEND"] = "django"
    # SCORM packages in the default storage (the bucket), served to browsers by
    # the LMS's own proxy view of the xblock: no storage function of its own
    # (Drydock's needs a /scorm-proxy route to a MinIO or public S3 bucket).
    xblock_settings = dict(namespace.get("XBLOCK_SETTINGS") or {})
    scorm = dict(xblock_settings.get("ScormXBlock") or {})
    scorm.pop("STORAGE_FUNC", None)
    scorm["PROXY_ASSETS_LMS"] = True
    xblock_settings["ScormXBlock"] = scorm
    namespace["XBLOCK_SETTINGS"] = xblock_settings
    learning = dict(namespace.get("OPENEDX_LEARNING") or {})
    learning["MEDIA"] = {"BACKEND": backend, "OPTIONS": options("openedx_learning")}
    namespace["OPENEDX_LEARNING"] = learning


_phd_media_on_bucket(globals())
del _phd_media_on_bucket
"""
)


def _storage_env_patch(container_path: str) -> str:
    """JSON patch operations that give a container the bucket's keys (from the
    credentials Secret) and boto3's checksum settings."""
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
        for variable, key in STORAGE_SECRET_KEYS.items()
    ] + [
        {"op": "add", "path": f"{container_path}/env/-", "value": {"name": name, "value": value}}
        for name, value in STORAGE_CHECKSUM_ENV.items()
    ]
    return json.dumps(operations)


def _storage_kustomization_patches() -> str:
    """kustomization.yml `patches` entries: the bucket's keys for every container
    that loads the Open edX settings (web, workers, Drydock's init jobs)."""
    lines = [
        _patch_entry(f"kind: Deployment\n    name: {name}", _storage_env_patch("/spec/template/spec/containers/0"))
        for name in OPENEDX_DEPLOYMENTS
    ]
    lines.append(
        _patch_entry(
            "kind: Job\n    labelSelector: app.kubernetes.io/component=drydock-job",
            _storage_env_patch("/spec/template/spec/containers/0"),
        )
    )
    return "\n".join(lines)


# Outbound email (config.yml PHD_OUTBOUND_EMAIL, default true). A clone of a
# production instance (`kubectl phd instance clone`) starts with it false, so the
# copy of the learners' data mails nobody until its operator asks: Django's dummy
# backend discards every message. `instance update NAME --set PHD_OUTBOUND_EMAIL=true`.
hooks.Filters.CONFIG_DEFAULTS.add_item(("PHD_OUTBOUND_EMAIL", True))
OUTBOUND_EMAIL_SETTINGS = """
{% if not PHD_OUTBOUND_EMAIL %}
# kubectl-phd: outbound email is off for this instance (PHD_OUTBOUND_EMAIL: false).
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
{% endif %}"""
hooks.Filters.ENV_PATCHES.add_items(
    [
        ("openedx-lms-production-settings", OUTBOUND_EMAIL_SETTINGS),
        ("openedx-cms-production-settings", OUTBOUND_EMAIL_SETTINGS),
    ]
)


# Drydock's SCORM storage and its /scorm-proxy routes are for a MinIO or public
# S3 bucket of Drydock's own settings; SCORM uses the default storage instead.
hooks.Filters.CONFIG_OVERRIDES.add_items([("DRYDOCK_ENABLE_SCORM", False)])

hooks.Filters.ENV_PATCHES.add_items(
    [
        ("openedx-lms-production-settings", STORAGE_SETTINGS),
        ("openedx-cms-production-settings", STORAGE_SETTINGS),
        ("kustomization-patches", _storage_kustomization_patches()),
    ]
)


# Size tiers (`kubectl phd instance create|update NAME --size TIER`, config.yml
# PHD_SIZE). Per tier and workload: CPU and memory (requests, limits), the
# autoscaler's replica range for the web and worker Deployments, Redis's and
# Meilisearch's memory caps and volume sizes. kubectl-phd's ResourceQuota for a
# tier (plugins/kubectl-phd/src/instance/create.rs `Size`) leaves room for every
# Deployment at its maximum replicas, all init hooks at once and the
# provisioning workflows' pods; a test checks the two agree.
# Resources: (cpu request, memory request, cpu limit, memory limit). The forum
# (tutor-forum 20 and later) runs inside the LMS: it has no Deployment.
SIZES: dict[str, dict[str, t.Any]] = {
    "small": {
        "resources": {
            "lms": ("250m", "1Gi", "1", "2Gi"),
            "cms": ("250m", "1Gi", "1", "2Gi"),
            "lms-worker": ("100m", "768Mi", "1", "1536Mi"),
            "cms-worker": ("100m", "768Mi", "1", "1536Mi"),
            "caddy": ("50m", "64Mi", "500m", "256Mi"),
            "mfe": ("50m", "64Mi", "500m", "256Mi"),
            "redis": ("50m", "128Mi", "500m", "256Mi"),
            "meilisearch": ("100m", "256Mi", "1", "1Gi"),
            "smtp": ("10m", "32Mi", "100m", "128Mi"),
            "job": ("250m", "1Gi", "1", "2Gi"),
        },
        # (minimum = replicas, maximum) of the HorizontalPodAutoscalers.
        "replicas": {"lms": (1, 2), "cms": (1, 2), "lms-worker": (1, 2), "cms-worker": (1, 2)},
        "redis_maxmemory": "192mb",
        "redis_volume": "1Gi",
        "meilisearch_indexing_memory": "512Mb",
        "meilisearch_volume": "5Gi",
    },
    "medium": {
        "resources": {
            "lms": ("500m", "1536Mi", "2", "3Gi"),
            "cms": ("500m", "1536Mi", "2", "3Gi"),
            "lms-worker": ("250m", "1Gi", "1", "2Gi"),
            "cms-worker": ("250m", "1Gi", "1", "2Gi"),
            "caddy": ("100m", "128Mi", "1", "256Mi"),
            "mfe": ("50m", "64Mi", "500m", "256Mi"),
            "redis": ("100m", "256Mi", "1", "512Mi"),
            "meilisearch": ("250m", "512Mi", "2", "2Gi"),
            "smtp": ("10m", "32Mi", "100m", "128Mi"),
            "job": ("250m", "1Gi", "1", "2Gi"),
        },
        "replicas": {"lms": (2, 4), "cms": (2, 3), "lms-worker": (1, 3), "cms-worker": (1, 3)},
        "redis_maxmemory": "384mb",
        "redis_volume": "2Gi",
        "meilisearch_indexing_memory": "1Gb",
        "meilisearch_volume": "10Gi",
    },
    "large": {
        "resources": {
            "lms": ("1", "2Gi", "2", "4Gi"),
            "cms": ("1", "2Gi", "2", "4Gi"),
            "lms-worker": ("500m", "1Gi", "2", "2Gi"),
            "cms-worker": ("500m", "1Gi", "2", "2Gi"),
            "caddy": ("200m", "128Mi", "1", "512Mi"),
            "mfe": ("100m", "128Mi", "1", "256Mi"),
            "redis": ("200m", "512Mi", "1", "1Gi"),
            "meilisearch": ("500m", "1Gi", "2", "4Gi"),
            "smtp": ("10m", "32Mi", "100m", "128Mi"),
            "job": ("500m", "1Gi", "2", "2Gi"),
        },
        "replicas": {"lms": (3, 8), "cms": (2, 4), "lms-worker": (2, 6), "cms-worker": (2, 4)},
        "redis_maxmemory": "768mb",
        "redis_volume": "4Gi",
        "meilisearch_indexing_memory": "2Gb",
        "meilisearch_volume": "20Gi",
    },
}
DEFAULT_SIZE = "small"
# Average CPU use (percent of the request) the autoscalers keep.
HPA_CPU_UTILIZATION = 70

hooks.Filters.CONFIG_DEFAULTS.add_item(("PHD_SIZE", DEFAULT_SIZE))
# PodDisruptionBudgets: phd renders its own for LMS and CMS (below); Drydock's
# settings only take a minAvailable percentage, which Kubernetes rounds up, so
# on a one-replica Deployment it would block every node drain.
hooks.Filters.CONFIG_OVERRIDES.add_items(
    [("DRYDOCK_PDB_MINAVAILABLE_PERCENTAGE_LMS", 0), ("DRYDOCK_PDB_MINAVAILABLE_PERCENTAGE_CMS", 0)]
)


@hooks.Actions.CONFIG_LOADED.add()
def _check_size(config: dict[str, t.Any]) -> None:
    size = config.get("PHD_SIZE", DEFAULT_SIZE)
    if size not in SIZES:
        raise exceptions.TutorError(f"PHD_SIZE is {size!r}: expected one of {', '.join(SIZES)}")


def _resources(values: tuple[str, str, str, str]) -> dict[str, t.Any]:
    cpu, memory, cpu_limit, memory_limit = values
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


def _resources_patch(values: tuple[str, str, str, str], containers: int = 1) -> str:
    """JSON patch operations that set the resources of a pod template's first
    `containers` containers (replacing Tutor's memory request)."""
    return json.dumps(
        [
            {"op": "add", "path": f"/spec/template/spec/containers/{index}/resources", "value": _resources(values)}
            for index in range(containers)
        ]
    )


def _size_kustomization_patches() -> str:
    """kustomization.yml `patches` entries of every tier, each inside a Jinja
    `if` on PHD_SIZE: resources of every Deployment's and Job's containers
    (every one of them renders a single container), Redis's and Meilisearch's
    volumes and Meilisearch's indexing memory."""
    lines = []
    for size, tier in SIZES.items():
        lines.append("{% if PHD_SIZE == " + json.dumps(size) + " %}")
        for name, values in tier["resources"].items():
            if name == "job":
                continue
            lines.append(_patch_entry(f"kind: Deployment\n    name: {name}", _resources_patch(values)))
        lines.append(_patch_entry("kind: Job", _resources_patch(tier["resources"]["job"])))
        lines.append(
            _patch_entry(
                "kind: PersistentVolumeClaim\n    name: redis",
                json.dumps([{"op": "replace", "path": "/spec/resources/requests/storage", "value": tier["redis_volume"]}]),
            )
        )
        lines.append("{% if RUN_MEILISEARCH %}")
        lines.append(
            _patch_entry(
                "kind: PersistentVolumeClaim\n    labelSelector: app.kubernetes.io/name=meilisearch",
                json.dumps(
                    [{"op": "replace", "path": "/spec/resources/requests/storage", "value": tier["meilisearch_volume"]}]
                ),
            )
        )
        lines.append(
            _patch_entry(
                "kind: Deployment\n    name: meilisearch",
                json.dumps(
                    [
                        {
                            "op": "add",
                            "path": "/spec/template/spec/containers/0/env/-",
                            "value": {"name": "MEILI_MAX_INDEXING_MEMORY", "value": tier["meilisearch_indexing_memory"]},
                        }
                    ]
                ),
            )
        )
        lines.append("{% endif %}")
        lines.append("{% endif %}")
    return "\n".join(lines)


def _size_objects() -> str:
    """The HorizontalPodAutoscalers of the web and worker Deployments and the
    PodDisruptionBudgets of LMS and CMS, for the instance's tier. The
    Deployments set no `replicas`: the autoscaler owns the count (Argo CD would
    otherwise reset it at every sync), starting at the tier's minimum."""
    documents = []
    for size, tier in SIZES.items():
        documents.append("{% if PHD_SIZE == " + json.dumps(size) + " %}")
        for name, (minimum, maximum) in tier["replicas"].items():
            documents.append(
                f"""---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: {minimum}
  maxReplicas: {maximum}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {HPA_CPU_UTILIZATION}"""
            )
        documents.append("{% endif %}")
    # One pod may be evicted at a time: with one replica a drain proceeds,
    # with more the others keep serving.
    for name in ["lms", "cms"]:
        documents.append(
            f"""---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}"""
        )
    return "\n".join(documents)


def _redis_conf() -> str:
    """redis.conf lines after Tutor's (the last value of a directive wins): a
    memory cap below the container's limit, and no eviction, since Redis is
    Celery's broker and an evicted key is a lost task; when full, Redis refuses
    writes instead. The volume holds the RDB snapshot and the AOF (at most about
    twice the data between rewrites): at least 4 times the cap."""
    lines = []
    for size, tier in SIZES.items():
        lines.append("{% if PHD_SIZE == " + json.dumps(size) + " %}")
        lines.append(f"maxmemory {tier['redis_maxmemory']}")
        lines.append("{% endif %}")
    lines.append("maxmemory-policy noeviction")
    return "\n".join(lines)


hooks.Filters.ENV_PATCHES.add_items(
    [
        ("kustomization-patches", _size_kustomization_patches()),
        ("k8s-services", _size_objects()),
        ("redis-conf", _redis_conf()),
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
