"""Loads a rendered Open edX settings file (env/apps/openedx/settings/{lms,cms}/production.py)
with the real Django, django-storages and boto3, then writes a file through every
Open edX file storage (`write`) or reads back what another process wrote (`read`).

Run by site_storage.rs, one process per step, each in a mount namespace of its own
with a fresh tmpfs on /openedx (where Tutor's settings put MEDIA_ROOT and the data
directories) and a temporary directory of its own: the two processes share the
bucket and nothing else.

    python site_storage.py write|read|inspect SETTINGS_FILE BUCKET RECORD_JSON

`inspect` prints, as JSON, each storage's endpoint, addressing style and region
without using the bucket.

The boundary, stood in for here: edx-platform itself (not installable outside its
image). The modules the rendered settings import are replaced by the stub package
below, which holds edx-platform's defaults of the settings the storages read
(lms/envs/common.py, cms/envs/common.py, openedx/envs/common.py). Each storage is
then built the way its Open edX consumer builds it (named in CONSUMERS). Everything
else is real: the rendered settings, Django's settings loader and storage registry,
django-storages' S3Storage and boto3 talking to the S3 server.
"""

import hashlib
import json
import os
import sys
import tempfile

STUBS = {
    "lms/__init__.py": "",
    "lms/envs/__init__.py": "",
    "cms/__init__.py": "",
    "cms/envs/__init__.py": "",
    "openedx_stub_common.py": '''
import os

ENV_TOKENS = {"LMS_BASE": "lms.example.org", "CMS_BASE": "studio.lms.example.org", "CONTACT_EMAIL": "contact@example.org"}
AUTH_TOKENS = {}
FEATURES = {}
LMS_ROOT_URL = "https://lms.example.org"
CORS_ORIGIN_WHITELIST = []
CSRF_TRUSTED_ORIGINS = []
LOGIN_REDIRECT_WHITELIST = []
IDA_LOGOUT_URI_LIST = []
INSTALLED_APPS = ["lms.djangoapps.coursewarehistoryextended"]
DATABASE_ROUTERS = ["openedx.core.lib.django_courseware_routers.StudentModuleHistoryExtendedRouter"]
MODULESTORE = {"default": {"OPTIONS": {"stores": [{"OPTIONS": {}}]}}}
CACHES = {}
DATABASES = {"default": {"OPTIONS": {}}}
LOGGING = {"handlers": {}, "loggers": {"": {}, "tracking": {}}}
LOG_DIR = "/openedx/data/logs"
STATIC_ROOT = "/openedx/staticfiles"
JWT_AUTH = {}
REGISTRATION_EXTRA_FIELDS = {}
XBLOCK_SETTINGS = {}
MIDDLEWARE = []
TEMPLATES = [{"OPTIONS": {"context_processors": []}}]
# The storages, with edx-platform's defaults.
MEDIA_ROOT = "/edx/var/edxapp/media/"
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "openedx.core.storage.ProductionStorage"},
}
VIDEO_IMAGE_SETTINGS = dict(
    VIDEO_IMAGE_MAX_BYTES=2 * 1024 * 1024,
    VIDEO_IMAGE_MIN_BYTES=2 * 1024,
    STORAGE_KWARGS=dict(location=MEDIA_ROOT),
    DIRECTORY_PREFIX="video-images/",
    BASE_URL=MEDIA_URL,
)
VIDEO_TRANSCRIPTS_SETTINGS = dict(
    VIDEO_TRANSCRIPTS_MAX_BYTES=3 * 1024 * 1024,
    STORAGE_KWARGS=dict(location=MEDIA_ROOT),
    DIRECTORY_PREFIX="video-transcripts/",
    BASE_URL=MEDIA_URL,
)
GRADES_DOWNLOAD = {
    "STORAGE_CLASS": "django.core.files.storage.FileSystemStorage",
    "STORAGE_KWARGS": {"location": "/tmp/edx-s3/grades"},
}
FILE_UPLOAD_STORAGE_PREFIX = "submissions_attachments"
ORA2_FILEUPLOAD_BACKEND = "s3"
''',
    "lms/envs/production.py": '''
from openedx_stub_common import *

PROFILE_IMAGE_BACKEND = {
    "class": "openedx.core.storage.OverwriteStorage",
    "options": {"location": os.path.join(MEDIA_ROOT, "profile-images/"), "base_url": os.path.join(MEDIA_URL, "profile-images/")},
}
''',
    "cms/envs/production.py": '''
from openedx_stub_common import *

COURSE_IMPORT_EXPORT_STORAGE = "django.core.files.storage.FileSystemStorage"
USER_TASKS_ARTIFACT_STORAGE = COURSE_IMPORT_EXPORT_STORAGE
''',
    "xmodule/__init__.py": "",
    "xmodule/modulestore/__init__.py": "",
    "xmodule/modulestore/modulestore_settings.py": '''
def update_module_store_settings(module_store_setting, doc_store_settings=None, **kwargs):
    pass
''',
    "codejail/__init__.py": "",
    "codejail/jail_code.py": '''
def configure(command, bin_path, user=None):
    pass
''',
}


def write_stubs(root):
    for path, text in STUBS.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as file:
            file.write(text)


def load_settings(settings_file):
    """Django's own settings loader on the rendered file (as DJANGO_SETTINGS_MODULE)."""
    stubs = tempfile.mkdtemp(prefix="openedx-stubs-")
    write_stubs(stubs)
    sys.path[:0] = [stubs, os.path.dirname(settings_file)]
    os.environ["DJANGO_SETTINGS_MODULE"] = os.path.splitext(os.path.basename(settings_file))[0]
    from django.conf import settings

    settings.STORAGES  # loads the module
    return settings


def storages_of(settings):
    """(consumer, storage, prefix of the file name) for every Open edX file storage,
    each built the way its consumer builds it."""
    from django.core.files.storage import default_storage, storages
    from django.utils.module_loading import import_string

    found = [("STORAGES['default'] (django default_storage)", default_storage, "")]
    # ORA2's "django" backend: default_storage under FILE_UPLOAD_STORAGE_PREFIX
    # (openassessment/fileupload/backends/django_storage.py).
    assert settings.ORA2_FILEUPLOAD_BACKEND == "django", settings.ORA2_FILEUPLOAD_BACKEND
    found.append(("ORA2 (django backend)", default_storage, settings.FILE_UPLOAD_STORAGE_PREFIX + "/"))
    # The SCORM xblock: default_storage unless XBLOCK_SETTINGS names a STORAGE_FUNC.
    scorm = getattr(settings, "XBLOCK_SETTINGS", {}).get("ScormXBlock", {})
    assert "STORAGE_FUNC" not in scorm, scorm
    found.append(("SCORM xblock", default_storage, scorm.get("LOCATION", "scorm") + "/"))
    # STORAGES entries first, then the older settings for code that reads those
    # (edx-platform's resolve_storage_backend, django-user-tasks' get_storage,
    # edxval's get_configured_storage).
    # Both routes of one consumer must reach the same objects.
    for alias, setting in [
        ("course_import_export", "COURSE_IMPORT_EXPORT_STORAGE"),
        ("user_task_artifacts", "USER_TASKS_ARTIFACT_STORAGE"),
    ]:
        legacy = import_string(getattr(settings, setting))()
        assert storages[alias].location == legacy.location, (alias, setting)
        found.append(("STORAGES[%r]" % alias, storages[alias], ""))
        found.append((setting, legacy, ""))
    for alias, setting in [("video_image", "VIDEO_IMAGE_SETTINGS"), ("video_transcripts", "VIDEO_TRANSCRIPTS_SETTINGS")]:
        config = getattr(settings, setting)
        legacy = import_string(config["STORAGE_CLASS"])(**config["STORAGE_KWARGS"])
        assert storages[alias].location == legacy.location, (alias, setting)
        # edxval names the files DIRECTORY_PREFIX + name, whichever route.
        prefix = config.get("DIRECTORY_PREFIX", "")
        found.append(("STORAGES[%r]" % alias, storages[alias], prefix))
        found.append((setting, legacy, prefix))
    found.append(("STORAGES['profile_image']", storages["profile_image"], ""))
    if hasattr(settings, "PROFILE_IMAGE_BACKEND"):
        config = settings.PROFILE_IMAGE_BACKEND
        legacy = import_string(config["class"])(**config["options"])
        assert storages["profile_image"].location == legacy.location
        found.append(("PROFILE_IMAGE_BACKEND", legacy, ""))
    # Grade reports: ReportStore.from_config("GRADES_DOWNLOAD") with STORAGE_TYPE neither s3 nor localfs.
    grades = settings.GRADES_DOWNLOAD
    assert grades.get("STORAGE_TYPE", "").lower() not in ("s3", "localfs"), grades
    found.append(("GRADES_DOWNLOAD", import_string(grades["STORAGE_CLASS"])(**grades["STORAGE_KWARGS"]), ""))
    # Libraries v2 media (openedx-core's media storage).
    media = settings.OPENEDX_LEARNING["MEDIA"]
    found.append(("OPENEDX_LEARNING['MEDIA']", import_string(media["BACKEND"])(**media.get("OPTIONS", {})), "content/"))
    return found


def check_storage(consumer, storage, bucket):
    from storages.backends.s3 import S3Storage

    assert isinstance(storage, S3Storage), "%s is %r, not django-storages' S3Storage" % (consumer, storage)
    assert storage.bucket_name == bucket, "%s uses bucket %r" % (consumer, storage.bucket_name)
    client = storage.connection.meta.client
    # The keys boto3 signs with came from the environment, not from a setting.
    method = client._request_signer._credentials.method
    assert method == "env", "%s signs with credentials from %r" % (consumer, method)
    config = client.meta.config
    assert config.request_checksum_calculation == "when_required", consumer
    assert config.response_checksum_validation == "when_required", consumer


def object_key(storage, name):
    return "%s/%s" % (storage.location.strip("/"), name) if storage.location else name


def main():
    mode, settings_file, bucket, record_file = sys.argv[1:5]
    settings = load_settings(settings_file)
    assert settings.STORAGES["staticfiles"]["BACKEND"] == "openedx.core.storage.ProductionStorage"
    found = storages_of(settings)
    from django.core.files.base import ContentFile

    if mode == "inspect":
        # How each storage reaches the bucket, without using it.
        shown = []
        for consumer, storage, _ in found:
            check_storage(consumer, storage, bucket)
            shown.append(
                {
                    "consumer": consumer,
                    "endpoint_url": storage.connection.meta.client.meta.endpoint_url,
                    "addressing_style": storage.addressing_style,
                    "region_name": storage.region_name,
                }
            )
        print(json.dumps(shown))
    elif mode == "write":
        service = os.path.basename(os.path.dirname(settings_file))
        record = []
        for index, (consumer, storage, prefix) in enumerate(found):
            check_storage(consumer, storage, bucket)
            payload = ("%s %s %d %s" % (service, consumer, index, os.urandom(8).hex())).encode()
            name = storage.save("%sphd-test/%s-%d.txt" % (prefix, service, index), ContentFile(payload))
            # Browsers get signed URLs of the bucket's endpoint (private objects).
            url = storage.url(name)
            assert url.startswith(storage.endpoint_url or "https://") and "X-Amz-Signature=" in url, url
            record.append(
                {
                    "consumer": consumer,
                    "name": name,
                    "key": object_key(storage, name),
                    "sha256": hashlib.sha256(payload).hexdigest(),
                    "payload": payload.decode(),
                }
            )
        with open(record_file, "w") as file:
            json.dump(record, file, indent=1)
    else:
        with open(record_file) as file:
            record = json.load(file)
        assert [entry["consumer"] for entry in record] == [consumer for consumer, _, _ in found]
        for entry, (consumer, storage, _) in zip(record, found):
            check_storage(consumer, storage, bucket)
            with storage.open(entry["name"], "rb") as file:
                data = file.read()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], "%s read %r" % (consumer, data)
            print("read back through %s: %s" % (consumer, entry["key"]))


if __name__ == "__main__":
    main()
