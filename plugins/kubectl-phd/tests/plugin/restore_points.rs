//! Restore points (issue 28): the script of the shipped
//! `restore-point-template` run as its container would run it (the exact
//! `source`, `sh`, only the environment the template sets; see
//! `phd_testkit::scripts`) against real servers: MariaDB (its `mysqldump`
//! and `mysql` stand in for the Open edX image's MySQL 8 client), FerretDB
//! (a MongoDB-wire server; Debian has no MongoDB) and moto's S3 server, with
//! pymongo and boto3 from PyPI standing in for the platform's Python.
//!
//! Backup, change every kind of data, restore: the data is compared by
//! checksums (MySQL's `CHECKSUM TABLE` and the table list, every MongoDB
//! document's bytes and the indexes, every object's bytes), not by exit
//! codes. A restore into another instance (a clone's data step) leaves the
//! source untouched. A point that is missing, unfinished or corrupted fails
//! before anything changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use phd_testkit::mariadb::{MariaDb, sql_identifier, sql_string};
use phd_testkit::mongodb::FerretDb;
use phd_testkit::s3::{ACCESS_KEY_ID, S3Server};
use phd_testkit::scripts::{Inputs, Run, Template};
use phd_testkit::unique_name;
use serde_json::Value;

const PROVISIONING: &str = "phd-provisioning";
const CREDENTIALS: &str = "phd-instance-credentials";
const ROOT_PASSWORD: &str = "root-pw";
const S3_SECRET: &str = "s3-secret-for-restore-points";
/// The MongoDB user of every instance of a test (FerretDB checks the password,
/// not per-database roles).
const MONGODB_USER: &str = "phd-restore-test";
const MONGODB_PASSWORD: &str = "mongo pw '$x' \\ \"q\"";

fn template() -> Template {
    Template::load("restore-point-template").expect("load restore-point-template")
}

/// One instance's databases and bucket on the shared servers.
struct Instance {
    name: String,
    database: String,
    user: String,
    password: String,
    mongodb: String,
    forum: String,
    bucket: String,
}

impl Instance {
    fn new(mysql: &MariaDb, s3: &S3Server) -> Self {
        let name = unique_name("rp");
        let instance = Self {
            database: format!("phd-{name}-openedx"),
            user: format!("phd-{name}"),
            password: format!("pw '{name}' $x"),
            mongodb: format!("phd-{name}-openedx"),
            forum: format!("phd-{name}-forum"),
            bucket: format!("phd-{name}-media"),
            name,
        };
        // As mysql-provision-template makes them: the user has all rights on its database only.
        mysql
            .socket_sql(&format!(
                "SET SESSION sql_mode = ''; CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; CREATE USER {user}@'%' IDENTIFIED BY {pw}; GRANT ALL PRIVILEGES ON {db}.* TO {user}@'%';",
                db = sql_identifier(&instance.database),
                user = sql_string(&instance.user),
                pw = sql_string(&instance.password),
            ))
            .expect("make the database and user");
        s3.s3api(&["create-bucket", "--bucket", &instance.bucket])
            .expect("make the bucket");
        instance
    }

    fn inputs(
        &self,
        operation: &str,
        point: &str,
        point_instance: &str,
        servers: &Servers,
    ) -> Inputs {
        Inputs::new()
            .secret(PROVISIONING, "restore-point-operation", operation)
            .secret(PROVISIONING, "instance", &self.name)
            .secret(PROVISIONING, "restore-point", point)
            .secret(PROVISIONING, "restore-point-instance", point_instance)
            .secret(
                PROVISIONING,
                "restore-point-metadata",
                r#"{"tutorVersion":"21.0.9"}"#,
            )
            .secret(PROVISIONING, "backup-bucket", &servers.backups)
            .secret(PROVISIONING, "mysql-host", "127.0.0.1")
            .secret(PROVISIONING, "mysql-port", servers.mysql.port.to_string())
            .secret(PROVISIONING, "mysql-database", &self.database)
            .secret(PROVISIONING, "mysql-user", &self.user)
            .secret(CREDENTIALS, "mysql-password", &self.password)
            .secret(PROVISIONING, "mongodb-host", "127.0.0.1")
            .secret(
                PROVISIONING,
                "mongodb-port",
                servers.mongodb.port().to_string(),
            )
            .secret(PROVISIONING, "mongodb-database", &self.mongodb)
            .secret(PROVISIONING, "mongodb-forum-database", &self.forum)
            .secret(PROVISIONING, "mongodb-use-ssl", "false")
            .secret(PROVISIONING, "mongodb-user", MONGODB_USER)
            .secret(PROVISIONING, "mongodb-auth-source", "admin")
            .secret(CREDENTIALS, "mongodb-password", MONGODB_PASSWORD)
            .secret(PROVISIONING, "bucket", &self.bucket)
            .secret(PROVISIONING, "storage-type", "s3")
            .secret(PROVISIONING, "storage-region", "us-east-1")
            .secret(PROVISIONING, "storage-endpoint-url", &servers.s3.endpoint)
            .secret(CREDENTIALS, "storage-access-key-id", ACCESS_KEY_ID)
            .secret(CREDENTIALS, "storage-secret-access-key", S3_SECRET)
            .extra_env("PATH", servers.path.clone())
    }

    /// Runs SQL as the instance's own user.
    #[track_caller]
    fn sql(&self, servers: &Servers, sql: &str) -> String {
        servers
            .mysql
            .tcp_sql(
                &self.user,
                &self.password,
                &format!(
                    "SET NAMES utf8mb4; USE {}; {sql}",
                    sql_identifier(&self.database)
                ),
            )
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every table with its checksum, and every view.
    fn mysql_state(&self, servers: &Servers) -> Vec<String> {
        let tables = self.sql(
            servers,
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name",
        );
        tables
            .lines()
            .map(|line| {
                let (table, kind) = line.split_once('\t').expect("two columns");
                if kind == "VIEW" {
                    return format!("view {table}");
                }
                let sum = self.sql(
                    servers,
                    &format!("CHECKSUM TABLE {} EXTENDED", sql_identifier(table)),
                );
                let sum = sum.split('\t').nth(1).unwrap_or_default().trim().to_owned();
                format!("table {table} {sum}")
            })
            .collect()
    }

    /// Every MongoDB document's bytes (sorted by _id) and the indexes, per collection.
    fn mongodb_state(&self, servers: &Servers) -> Value {
        servers.python(
            MONGO_STATE,
            &[&servers.mongodb.uri(), &self.mongodb, &self.forum],
        )
    }

    /// Every object of the bucket: key and MD5 of its bytes.
    fn media_state(&self, servers: &Servers) -> BTreeMap<String, String> {
        let listed = servers
            .s3
            .s3api(&["list-objects-v2", "--bucket", &self.bucket])
            .expect("list the bucket");
        listed["Contents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                let key = item["Key"].as_str().expect("key").to_owned();
                let body = servers.s3.get_object(&self.bucket, &key).expect("get");
                let digest = md5(&body);
                (key, digest)
            })
            .collect()
    }

    fn state(&self, servers: &Servers) -> (Vec<String>, Value, BTreeMap<String, String>) {
        (
            self.mysql_state(servers),
            self.mongodb_state(servers),
            self.media_state(servers),
        )
    }
}

fn md5(bytes: &[u8]) -> String {
    use md5::Digest as _;
    format!("{:x}", md5::Md5::digest(bytes))
}

/// The servers every instance of a test shares, and the backups bucket.
struct Servers {
    mysql: MariaDb,
    mongodb: FerretDb,
    s3: S3Server,
    backups: String,
    python: PathBuf,
    /// PATH of the script: the venv's python first, then the system's tools.
    path: String,
}

impl Servers {
    fn start() -> Self {
        let python = phd_testkit::mongodb::backup_python();
        let venv_bin = python.parent().expect("venv bin").to_owned();
        let s3 = S3Server::start().expect("start the S3 server");
        let backups = unique_name("phd-backups");
        s3.s3api(&["create-bucket", "--bucket", &backups])
            .expect("make the backups bucket");
        Self {
            mysql: MariaDb::start(ROOT_PASSWORD, &[]).expect("start MariaDB"),
            mongodb: FerretDb::start_with_user(MONGODB_USER, MONGODB_PASSWORD)
                .expect("start FerretDB"),
            s3,
            backups,
            python,
            path: format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                venv_bin.display()
            ),
        }
    }

    /// Runs a Python snippet of this test with the venv's pymongo; its JSON output.
    #[track_caller]
    fn python(&self, code: &str, args: &[&str]) -> Value {
        let output = Command::new(&self.python)
            .arg("-c")
            .arg(code)
            .args(args)
            .output()
            .expect("run python");
        assert!(
            output.status.success(),
            "python: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("python prints JSON")
    }
}

/// Fills two MongoDB databases: documents of many BSON types, indexes of the
/// kinds the platform makes (unique, compound, sparse). FerretDB v1 has no
/// Decimal128 and no TTL index (phd_testkit::mongodb), so neither is here.
const MONGO_FILL: &str = r#"
import datetime, json, sys, uuid
import pymongo
from bson import Binary, Int64, ObjectId, Regex, Timestamp
client = pymongo.MongoClient(sys.argv[1])
main, forum = client[sys.argv[2]], client[sys.argv[3]]
main.modulestore.active_versions.insert_many([
    {"_id": ObjectId(), "org": "Demo'X", "course": "C$1", "run": "2026",
     "versions": {"published-branch": ObjectId()}, "edited_on": datetime.datetime(2026, 1, 2, 3, 4, 5)},
    {"_id": ObjectId(), "org": "ünï", "course": "cöurse", "run": "r", "schema_version": Int64(1 << 40),
     "price": 12.5, "blob": Binary(b"\x00\x01\xff" * 100), "pattern": Regex("^a.*", "i"),
     "nested": {"list": [1, 2.5, None, True, "x"], "ts": Timestamp(1700000000, 1)}},
])
main.modulestore.structures.insert_many([{"_id": ObjectId(), "blocks": [{"n": i}]} for i in range(1500)])
main.modulestore.active_versions.create_index([("org", 1), ("course", 1), ("run", 1)], unique=True)
main.modulestore.structures.create_index("blocks.n", sparse=True)
forum.contents.insert_many([{"_id": ObjectId(), "body": "post %d" % i, "author_id": str(i % 7)} for i in range(50)])
forum.contents.create_index("author_id")
forum.subscriptions.insert_one({"source_id": "t1", "subscriber_id": "7"})
forum.subscriptions.create_index([("subscriber_id", 1), ("source_id", 1)], unique=True)
print(json.dumps(True))
"#;

/// Changes every kind of MongoDB data: documents removed and changed, a
/// collection dropped and one added, an index dropped.
const MONGO_CHANGE: &str = r#"
import json, sys
import pymongo
client = pymongo.MongoClient(sys.argv[1])
main, forum = client[sys.argv[2]], client[sys.argv[3]]
main.modulestore.structures.delete_many({"blocks.n": {"$lt": 700}})
main.modulestore.active_versions.update_many({}, {"$set": {"org": "changed"}})
main.modulestore.structures.drop_index("blocks.n_1")
forum.contents.drop()
forum.extra.insert_one({"x": 1})
print(json.dumps(True))
"#;

/// Every collection's documents (bytes, sorted by _id) and indexes (name, key, options).
const MONGO_STATE: &str = r#"
import hashlib, json, sys
import pymongo
from bson.raw_bson import RawBSONDocument
client = pymongo.MongoClient(sys.argv[1], document_class=RawBSONDocument)
state = {}
for role, name in (("main", sys.argv[2]), ("forum", sys.argv[3])):
    database = client[name]
    for collection in sorted(database.list_collection_names()):
        if collection.startswith("system."):
            continue
        docs = sorted(d.raw for d in database[collection].find())
        plain = pymongo.MongoClient(sys.argv[1])[name][collection]
        indexes = sorted(
            json.dumps({k: (dict(v) if k == "key" else v) for k, v in i.items() if k not in ("v", "ns")}, sort_keys=True, default=str)
            for i in plain.list_indexes())
        state["%s/%s" % (role, collection)] = {
            "count": len(docs),
            "sha256": hashlib.sha256(b"".join(docs)).hexdigest(),
            "indexes": indexes,
        }
print(json.dumps(state, sort_keys=True))
"#;

fn fill(instance: &Instance, servers: &Servers) {
    instance.sql(
        servers,
        "CREATE TABLE auth_user (id INT PRIMARY KEY AUTO_INCREMENT, username VARCHAR(40) UNIQUE, bio TEXT, avatar BLOB, joined DATETIME(6));
         CREATE TABLE enrollment (id INT PRIMARY KEY, user_id INT, course VARCHAR(80), FOREIGN KEY (user_id) REFERENCES auth_user (id));
         INSERT INTO auth_user (username, bio, avatar, joined) VALUES
           ('alice', 'quotes '' \" ` and \\\\ backslash; DROP TABLE x; --', 0x00FF10, '2026-01-02 03:04:05.123456'),
           ('bob', 'ünïcödé ✓ 😀', NULL, NULL);
         INSERT INTO enrollment VALUES (1, 1, 'course-v1:Demo+C1+2026'), (2, 2, 'course-v1:Demo+C1+2026');
         CREATE VIEW enrolled AS SELECT username, course FROM auth_user JOIN enrollment ON auth_user.id = enrollment.user_id;",
    );
    servers.python(
        MONGO_FILL,
        &[&servers.mongodb.uri(), &instance.mongodb, &instance.forum],
    );
    for (key, body) in [
        (
            "courses/course-v1:Demo+C1+2026/asset.png",
            vec![0u8, 1, 2, 255],
        ),
        ("user_tasks/2026/12/export.tar.gz", b"export".repeat(5000)),
        ("profile-images/alice 1.jpg", b"jpeg".to_vec()),
    ] {
        servers
            .s3
            .put_object(&instance.bucket, key, &body)
            .expect("put media");
    }
}

fn change(instance: &Instance, servers: &Servers) {
    instance.sql(
        servers,
        "INSERT INTO auth_user (username) VALUES ('mallory');
         UPDATE auth_user SET bio = 'changed' WHERE username = 'alice';
         DELETE FROM enrollment WHERE id = 2;
         CREATE TABLE made_after (id INT);
         DROP VIEW enrolled;",
    );
    servers.python(
        MONGO_CHANGE,
        &[&servers.mongodb.uri(), &instance.mongodb, &instance.forum],
    );
    servers
        .s3
        .put_object(&instance.bucket, "profile-images/alice 1.jpg", b"other")
        .expect("overwrite media");
    servers
        .s3
        .put_object(&instance.bucket, "uploaded/after.txt", b"after")
        .expect("add media");
    servers
        .s3
        .s3api(&[
            "delete-object",
            "--bucket",
            &instance.bucket,
            "--key",
            "user_tasks/2026/12/export.tar.gz",
        ])
        .expect("delete media");
}

#[track_caller]
fn run(inputs: &Inputs) -> Run {
    template().run(inputs).expect("run restore-point-template")
}

#[test]
fn backup_then_changes_then_restore_gives_back_every_byte() {
    let servers = Servers::start();
    let site = Instance::new(&servers.mysql, &servers.s3);
    fill(&site, &servers);
    let before = site.state(&servers);
    assert_eq!(before.0.len(), 3, "{:?}", before.0);
    assert_eq!(before.2.len(), 3);

    let made = run(&site.inputs("backup", "p1", &site.name, &servers));
    made.assert_success();
    assert!(made.stdout.contains("restore point p1"), "{made}");
    // restore-point.json: written last, with what the point holds.
    let point: Value = serde_json::from_slice(
        &servers
            .s3
            .get_object(
                &servers.backups,
                &format!("{}/p1/restore-point.json", site.name),
            )
            .expect("restore-point.json"),
    )
    .expect("JSON");
    assert_eq!(point["tutorVersion"], "21.0.9", "{point}");
    assert_eq!(point["media"]["objects"], 3, "{point}");
    assert_eq!(
        point["mongodb"]["collections"][&site.mongodb]["modulestore.structures"], 1500,
        "{point}"
    );
    assert!(
        point["files"]["mysql.sql.gz"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );

    change(&site, &servers);
    let changed = site.state(&servers);
    assert_ne!(changed.0, before.0);
    assert_ne!(changed.1, before.1);
    assert_ne!(changed.2, before.2);

    let restored = run(&site.inputs("restore", "p1", &site.name, &servers));
    restored.assert_success();
    let after = site.state(&servers);
    assert_eq!(after.0, before.0, "MySQL differs after the restore");
    assert_eq!(after.1, before.1, "MongoDB differs after the restore");
    assert_eq!(after.2, before.2, "media differs after the restore");

    // Restoring again is safe and gives the same.
    run(&site.inputs("restore", "p1", &site.name, &servers)).assert_success();
    assert_eq!(site.state(&servers), before);
}

#[test]
fn a_point_restored_into_another_instance_copies_the_data_and_leaves_the_source_alone() {
    let servers = Servers::start();
    let source = Instance::new(&servers.mysql, &servers.s3);
    let copy = Instance::new(&servers.mysql, &servers.s3);
    fill(&source, &servers);
    run(&source.inputs("backup", "nightly", &source.name, &servers)).assert_success();
    change(&source, &servers);
    let source_now = source.state(&servers);

    run(&copy.inputs("restore", "nightly", &source.name, &servers)).assert_success();
    // The copy holds the point's data in its own databases and bucket...
    let copied = copy.state(&servers);
    assert_eq!(copied.0.len(), 3, "{:?}", copied.0);
    assert!(copied.1.get("main/modulestore.structures").is_some());
    assert_eq!(copied.1["main/modulestore.structures"]["count"], 1500);
    assert_eq!(copied.1["forum/contents"]["count"], 50);
    assert_eq!(copied.2.len(), 3);
    // ...and the source is as it was.
    assert_eq!(source.state(&servers), source_now);
}

/// A clone's data step (`instance clone`): the copy gets its own hosts in
/// the Sites, OAuth2 redirect URIs and site configurations (each once, even
/// where the clone's host holds the source's: demo -> staging-demo), none of the
/// source's logins, and with scrub no learner's name, email or password;
/// staff keep theirs; the source is untouched.
#[test]
fn a_clone_gets_its_own_hosts_no_logins_and_with_scrub_no_personal_data() {
    let servers = Servers::start();
    let source = Instance::new(&servers.mysql, &servers.s3);
    let copy = Instance::new(&servers.mysql, &servers.s3);
    source.sql(
        &servers,
        "CREATE TABLE django_site (id INT PRIMARY KEY, domain VARCHAR(100), name VARCHAR(50));
         INSERT INTO django_site VALUES (1, 'demo.example.org', 'demo.example.org');
         CREATE TABLE oauth2_provider_application (id INT PRIMARY KEY, name VARCHAR(255), redirect_uris TEXT);
         INSERT INTO oauth2_provider_application VALUES
           (1, 'cms-sso', 'https://studio.demo.example.org/complete/edx-oauth2/'),
           (2, 'login-service', 'https://apps.demo.example.org/learning/ https://demo.example.org/login');
         CREATE TABLE site_configuration_siteconfiguration (id INT PRIMARY KEY, site_values LONGTEXT);
         INSERT INTO site_configuration_siteconfiguration VALUES (1, '{\"LMS_ROOT_URL\": \"https://demo.example.org\"}');
         CREATE TABLE django_session (session_key VARCHAR(40) PRIMARY KEY, session_data TEXT);
         INSERT INTO django_session VALUES ('k1', 'logged in at the source');
         CREATE TABLE oauth2_provider_accesstoken (id INT PRIMARY KEY, token VARCHAR(255));
         INSERT INTO oauth2_provider_accesstoken VALUES (1, 'source-token');
         CREATE TABLE auth_user (id INT PRIMARY KEY, username VARCHAR(150), email VARCHAR(254), first_name VARCHAR(150),
           last_name VARCHAR(150), password VARCHAR(128), is_staff BOOL, is_superuser BOOL);
         INSERT INTO auth_user VALUES (1, 'admin', 'admin@src.example.org', 'Ad', 'Min', 'pbkdf2$admin', 1, 1),
           (2, 'jane', 'jane@doe.example', 'Jane', 'Doe', 'pbkdf2$jane', 0, 0);
         CREATE TABLE auth_userprofile (id INT PRIMARY KEY, user_id INT, name VARCHAR(255), city TEXT NULL, bio TEXT NULL);
         INSERT INTO auth_userprofile VALUES (1, 1, 'Admin Person', NULL, NULL), (2, 2, 'Jane Doe', 'Paris', 'hello');",
    );
    let source_before = source.mysql_state(&servers);
    run(&source.inputs("backup", "c1", &source.name, &servers)).assert_success();
    let rewrite = "demo.example.org staging-demo.example.org\nstudio.demo.example.org studio.staging-demo.example.org\napps.demo.example.org apps.staging-demo.example.org\n";
    let cloned = run(&copy
        .inputs("restore", "c1", &source.name, &servers)
        .secret(PROVISIONING, "rewrite-hosts", rewrite)
        .secret(PROVISIONING, "scrub", "true"));
    cloned.assert_success();
    assert!(
        cloned.stdout.contains("learners' personal data replaced"),
        "{cloned}"
    );
    let query = |sql: &str| copy.sql(&servers, sql);
    assert_eq!(
        query("SELECT domain, name FROM django_site"),
        "staging-demo.example.org\tstaging-demo.example.org\n"
    );
    assert_eq!(
        query("SELECT redirect_uris FROM oauth2_provider_application ORDER BY id"),
        "https://studio.staging-demo.example.org/complete/edx-oauth2/\nhttps://apps.staging-demo.example.org/learning/ https://staging-demo.example.org/login\n"
    );
    assert!(
        query("SELECT site_values FROM site_configuration_siteconfiguration")
            .contains("https://staging-demo.example.org")
    );
    assert_eq!(query("SELECT COUNT(*) FROM django_session"), "0\n");
    assert_eq!(
        query("SELECT COUNT(*) FROM oauth2_provider_accesstoken"),
        "0\n"
    );
    assert_eq!(
        query("SELECT email, first_name, last_name, password FROM auth_user ORDER BY id"),
        "admin@src.example.org\tAd\tMin\tpbkdf2$admin\nlearner-2@example.invalid\t\t\t!\n"
    );
    assert_eq!(
        query(
            "SELECT name, IFNULL(city, 'NULL'), IFNULL(bio, 'NULL') FROM auth_userprofile ORDER BY id"
        ),
        "Admin Person\tNULL\tNULL\n\t\t\n"
    );
    // The source: as it was.
    assert_eq!(source.mysql_state(&servers), source_before);
    assert_eq!(
        source.sql(&servers, "SELECT COUNT(*) FROM django_session"),
        "1\n"
    );
}

/// Retention (`instance backup --keep`): deleting a point removes its whole
/// folder and nothing of the other points or of the site.
#[test]
fn deleting_a_point_removes_its_folder_only() {
    let servers = Servers::start();
    let site = Instance::new(&servers.mysql, &servers.s3);
    fill(&site, &servers);
    run(&site.inputs("backup", "old", &site.name, &servers)).assert_success();
    run(&site.inputs("backup", "new", &site.name, &servers)).assert_success();
    let before = site.state(&servers);
    let listed = |prefix: &str| {
        servers
            .s3
            .s3api(&[
                "list-objects-v2",
                "--bucket",
                &servers.backups,
                "--prefix",
                prefix,
            ])
            .expect("list")["Contents"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let old = format!("{}/old/", site.name);
    let new = format!("{}/new/", site.name);
    let kept = listed(&new);
    assert!(listed(&old) > 5 && kept > 5);
    let removed = run(&site.inputs("delete", "old", &site.name, &servers));
    removed.assert_success();
    assert!(removed.stdout.contains("restore point old"), "{removed}");
    assert_eq!(listed(&old), 0);
    assert_eq!(listed(&new), kept);
    assert_eq!(site.state(&servers), before);
    // The remaining point still restores.
    change(&site, &servers);
    run(&site.inputs("restore", "new", &site.name, &servers)).assert_success();
    assert_eq!(site.state(&servers), before);
}

#[test]
fn a_missing_unfinished_or_corrupted_point_fails_before_anything_changes() {
    let servers = Servers::start();
    let site = Instance::new(&servers.mysql, &servers.s3);
    fill(&site, &servers);
    let before = site.state(&servers);

    let missing = run(&site.inputs("restore", "nope", &site.name, &servers));
    missing.assert_failure_mentioning(&["no restore point nope"]);
    assert_eq!(site.state(&servers), before);

    run(&site.inputs("backup", "p2", &site.name, &servers)).assert_success();
    change(&site, &servers);
    let changed = site.state(&servers);
    // A dump that no longer matches its checksum.
    servers
        .s3
        .put_object(
            &servers.backups,
            &format!("{}/p2/mysql.sql.gz", site.name),
            b"not the dump",
        )
        .expect("overwrite the dump");
    let corrupted = run(&site.inputs("restore", "p2", &site.name, &servers));
    corrupted.assert_failure_mentioning(&["mysql.sql.gz does not match its checksum"]);
    assert_eq!(site.state(&servers), changed);

    // Without restore-point.json the folder is an unfinished backup.
    servers
        .s3
        .s3api(&[
            "delete-object",
            "--bucket",
            &servers.backups,
            "--key",
            &format!("{}/p2/restore-point.json", site.name),
        ])
        .expect("delete restore-point.json");
    let unfinished = run(&site.inputs("restore", "p2", &site.name, &servers));
    unfinished.assert_failure_mentioning(&["no restore point p2", "unfinished"]);
    assert_eq!(site.state(&servers), changed);

    // A name that is not a point's.
    let bad = run(&site.inputs("backup", "../other", &site.name, &servers));
    bad.assert_failure_mentioning(&["is not [0-9A-Za-z-]+"]);
}

// ------------------------------------------------ the commands, on the control plane

mod commands {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, DynamicObject};
    use phd_common::argo;
    use phd_testkit::argo::{Verdict, WorkflowController};
    use phd_testkit::unique_name;
    use serde_json::Value;

    use crate::common::{self, ATLAS_PRIVATE, ROOT_PASSWORD, Repo, STORAGE_SECRET};

    const BACKUPS: &str = "phd-test-backups";

    async fn replicas(
        client: &kube::Client,
        name: &str,
        deployment: &str,
    ) -> (i32, Option<String>) {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), name);
        let found = deployments.get(deployment).await.expect("deployment");
        (
            found.spec.and_then(|s| s.replicas).unwrap_or(1),
            found
                .metadata
                .annotations
                .and_then(|a| a.get("kubectl-phd/replicas-before-restore").cloned()),
        )
    }

    async fn automated(client: &kube::Client, name: &str) -> Value {
        let applications: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "argocd",
            &argo::Kind::Application.resource(),
        );
        let application = applications
            .get(&format!("{name}-production"))
            .await
            .expect("application");
        application.data["spec"]["syncPolicy"]["automated"].clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_lists_and_restore_stop_the_site_and_start_it_again() {
        let plane = common::control_plane_with_argo().await;
        let client = plane.client().await.expect("client");
        let name = unique_name("rp");
        let repo = Repo::new();
        let controller = WorkflowController::start(client.clone(), &name);
        let developer = unique_name("rpdev");
        repo.phd(&plane.admin_kubeconfig)
            .args(["user", "create", &developer, "--role", "developer"])
            .write_stdin("")
            .assert()
            .success();
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "create", &name, "--timeout", "60s"])
            .assert()
            .success();
        crate::instances::deploy_env(
            &plane.admin_kubeconfig,
            &repo.instances().join(&name).join("env"),
            &format!("{name}-production"),
        );
        let (lms_before, _) = replicas(&client, &name, "lms").await;
        assert!(automated(&client, &name).await.is_object());

        // No backups bucket: refused before anything changes.
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "backup", &name])
            .assert()
            .code(1)
            .stderr(predicates::str::contains(
                "no backups bucket: set PHD_BACKUP_BUCKET",
            ));
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "backups", &name])
            .output()
            .expect("run");
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("no restore points"));

        // A backup needs no admin credential at all.
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .env_remove("PHD_MYSQL_ROOT_PASSWORD")
            .env_remove("PHD_STORAGE_SECRET_ACCESS_KEY")
            .args(["instance", "backup", &name, "--point", "p1", "-o", "json"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(result["kind"], "RestorePoint");
        assert_eq!(result["action"], "created");
        assert_eq!(
            result["restorePoint"]["location"],
            format!("s3://{BACKUPS}/{name}/p1/")
        );
        assert_eq!(result["restorePoint"]["tutorVersion"], "22.0.3");
        // What the Workflow read: the target, and no credential; no developer could submit beside it.
        let seen = controller
            .surroundings("backup-p1")
            .expect("backup Workflow ran");
        let secret = seen.provisioning.expect("phd-provisioning during the run");
        assert_eq!(secret["restore-point-operation"], "backup");
        assert_eq!(secret["restore-point"], "p1");
        assert_eq!(secret["instance"], name);
        assert_eq!(secret["backup-bucket"], BACKUPS);
        assert_eq!(secret["mysql-database"], format!("phd-{name}-openedx"));
        for value in secret.values() {
            for credential in [ROOT_PASSWORD, STORAGE_SECRET, ATLAS_PRIVATE] {
                assert!(
                    !value.contains(credential),
                    "a credential in phd-provisioning"
                );
            }
        }
        assert!(
            !seen
                .developers
                .unwrap_or_default()
                .iter()
                .any(|subject| subject.ends_with(&developer)),
            "developers could submit Workflows during the run"
        );
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
        assert!(
            secrets
                .get_opt("phd-provisioning")
                .await
                .expect("get")
                .is_none()
        );

        // Again: the point exists, nothing runs.
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "backup", &name, "--point", "p1", "-o", "json"])
            .assert()
            .success()
            .stdout(predicates::str::contains("\"unchanged\""));
        let listed = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "backups", &name, "-o", "json"])
            .output()
            .expect("run");
        let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(listed["items"][0]["name"], "p1");

        // An unknown point names the known ones; no answer to the question: nothing changes.
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "restore", &name, "--from", "p9", "--yes"])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("no restore point p9; it has: p1"));
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "restore", &name, "--from", "p1"])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("--yes"));
        assert_eq!(replicas(&client, &name, "lms").await, (lms_before, None));

        // A restore that fails leaves the site stopped and its sync paused, and says so.
        controller.set(
            "restore-p1",
            Verdict::Fail {
                step: "main".into(),
                message: "cannot load restore point p1".into(),
            },
        );
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args([
                "instance",
                "restore",
                &name,
                "--from",
                "p1",
                "--yes",
                "--timeout",
                "60s",
            ])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("stays stopped"))
            .stderr(predicates::str::contains("cannot load restore point p1"));
        assert_eq!(
            replicas(&client, &name, "lms").await,
            (0, Some(lms_before.to_string()))
        );
        assert_eq!(automated(&client, &name).await["enabled"], false);

        // Run again: it finishes, and the site runs as before.
        controller.set("restore-p1", Verdict::Succeed);
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args([
                "instance",
                "restore",
                &name,
                "--from",
                "p1",
                "--yes",
                "--timeout",
                "60s",
            ])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("restored {name} to restore point p1")),
            "{stderr}"
        );
        assert_eq!(replicas(&client, &name, "lms").await, (lms_before, None));
        assert_eq!(automated(&client, &name).await["enabled"], true);
        let seen = controller.surroundings("restore-p1").expect("restore ran");
        assert_eq!(
            seen.provisioning.expect("secret")["restore-point-operation"],
            "restore"
        );
        assert!(
            secrets
                .get_opt("phd-provisioning")
                .await
                .expect("get")
                .is_none()
        );

        // Retention: with --keep 2, the oldest point goes (its folder, then its entry).
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "backup", &name, "--point", "p2"])
            .assert()
            .success();
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args([
                "instance", "backup", &name, "--point", "p3", "--keep", "2", "-o", "json",
            ])
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert!(
            result["external"]
                .to_string()
                .contains(&format!("{name}/p1/")),
            "{result}"
        );
        let seen = controller
            .surroundings("delete-p1")
            .expect("the delete Workflow ran");
        assert_eq!(
            seen.provisioning.expect("secret")["restore-point-operation"],
            "delete"
        );
        let listed = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "backups", &name, "-o", "name"])
            .output()
            .expect("run");
        assert_eq!(
            String::from_utf8_lossy(&listed.stdout),
            "restorepoint/p2\nrestorepoint/p3\n"
        );
    }

    /// `instance clone`: a new instance with its own namespace, databases and
    /// hosts, outbound email off, the source's point restored into it with
    /// the source's hosts paired with its own; the source only read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clone_makes_a_new_instance_from_a_point_of_another() {
        let plane = common::control_plane_with_argo().await;
        let client = plane.client().await.expect("client");
        let source = unique_name("cls");
        let copy = unique_name("clc");
        let repo = Repo::new();
        let source_controller = WorkflowController::start(client.clone(), &source);
        let copy_controller = WorkflowController::start(client.clone(), &copy);
        repo.phd(&plane.admin_kubeconfig)
            .args([
                "instance",
                "create",
                &source,
                "--size",
                "medium",
                "--timeout",
                "60s",
            ])
            .assert()
            .success();

        // Refused before anything changes: itself, or onto another instance.
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "clone", &source, &source])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("a name of its own"));
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "clone", &source, &copy, "--from", "nope"])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("has no restore point nope"));

        let output = repo
            .phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args([
                "instance",
                "clone",
                &source,
                &copy,
                "--timeout",
                "60s",
                "-o",
                "json",
            ])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains("outbound email is off"), "{stderr}");
        let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let point = result["restorePoint"]["name"]
            .as_str()
            .expect("point")
            .to_owned();
        assert!(point.starts_with("clone-"), "{result}");
        assert_eq!(result["restorePoint"]["instance"], source.as_str());

        // The point was made in the source; the restore ran in the copy only.
        assert!(
            source_controller
                .surroundings(&format!("backup-{point}"))
                .is_some()
        );
        assert!(
            source_controller
                .surroundings(&format!("restore-{point}"))
                .is_none()
        );
        let seen = copy_controller
            .surroundings(&format!("restore-{point}"))
            .expect("the restore ran in the copy");
        let secret = seen.provisioning.expect("phd-provisioning");
        assert_eq!(secret["instance"], copy);
        assert_eq!(secret["restore-point-instance"], source);
        assert_eq!(secret["mysql-database"], format!("phd-{copy}-openedx"));
        assert_eq!(secret["scrub"], "false");
        let pairs: Vec<(String, String)> = secret["rewrite-hosts"]
            .lines()
            .map(|line| {
                let (old, new) = line.split_once(' ').expect("pair");
                (old.to_owned(), new.to_owned())
            })
            .collect();
        assert!(
            pairs.contains(&(
                format!("{source}.lms.example.org"),
                format!("{copy}.lms.example.org")
            )),
            "{pairs:?}"
        );
        assert!(pairs.len() >= 3, "{pairs:?}");
        // The copy: its own files, the source's release and size, outbound email off.
        let config = std::fs::read_to_string(repo.instances().join(&copy).join("config.yml"))
            .expect("config.yml");
        assert!(config.contains("PHD_OUTBOUND_EMAIL: false"), "{config}");
        assert!(
            config.contains("PHD_SIZE: medium") || config.contains("PHD_SIZE: \"medium\""),
            "{config}"
        );
        let settings = std::fs::read_to_string(
            repo.instances()
                .join(&copy)
                .join("env/apps/openedx/settings/lms/production.py"),
        )
        .expect("LMS settings");
        assert!(
            settings.contains("django.core.mail.backends.dummy.EmailBackend"),
            "outbound email is not off in the copy's LMS settings"
        );
        let source_settings = std::fs::read_to_string(
            repo.instances()
                .join(&source)
                .join("env/apps/openedx/settings/lms/production.py"),
        )
        .expect("LMS settings");
        assert!(!source_settings.contains("dummy.EmailBackend"));
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let annotations = namespaces
            .get(&copy)
            .await
            .expect("namespace")
            .metadata
            .annotations
            .unwrap_or_default();
        assert_eq!(
            annotations.get("kubectl-phd/clone-of"),
            Some(&format!("{source}/{point}"))
        );
    }

    /// An ApplicationSet that would put the automated sync back while the
    /// restore runs (a cluster repository made before restore points): the
    /// restore stops before changing anything and says what to add; with the
    /// rule, it runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restore_refuses_an_applicationset_that_would_undo_the_pause() {
        let plane = common::control_plane_with_argo().await;
        let client = plane.client().await.expect("client");
        let name = unique_name("rpset");
        let repo = Repo::new();
        let _controller = WorkflowController::start(client.clone(), &name);
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "create", &name, "--timeout", "60s"])
            .assert()
            .success();
        crate::instances::deploy_env(
            &plane.admin_kubeconfig,
            &repo.instances().join(&name).join("env"),
            &format!("{name}-production"),
        );
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args(["instance", "backup", &name, "--point", "p1"])
            .assert()
            .success();
        // Issue 28 faults: phd-provisioning serves one run at a time. Held by
        // a create or delete (admin credentials), or by another point's run:
        // refused before anything changes, the holder's Secret untouched.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
        let (lms, _) = replicas(&client, &name, "lms").await;
        for (holder, expected) in [
            (
                vec![("mysql-root-password", "admin-pw")],
                "is being provisioned or deprovisioned",
            ),
            (
                vec![
                    ("restore-point-operation", "restore"),
                    ("restore-point", "p9"),
                ],
                "is busy: a restore of its restore point p9",
            ),
        ] {
            let held: Secret = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "phd-provisioning", "namespace": name},
                "stringData": holder.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            }))
            .expect("Secret");
            secrets
                .create(&Default::default(), &held)
                .await
                .expect("hold");
            for args in [
                vec!["instance", "backup", &name, "--point", "p2"],
                vec!["instance", "restore", &name, "--from", "p1", "--yes"],
            ] {
                repo.phd(&plane.admin_kubeconfig)
                    .env("PHD_BACKUP_BUCKET", BACKUPS)
                    .args(&args)
                    .assert()
                    .code(1)
                    .stderr(predicates::str::contains(expected));
            }
            let kept = secrets.get("phd-provisioning").await.expect("still there");
            assert_eq!(
                kept.data
                    .unwrap_or_default()
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>(),
                holder
                    .iter()
                    .map(|(k, _)| (*k).to_owned())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
            );
            assert_eq!(replicas(&client, &name, "lms").await, (lms, None));
            secrets
                .delete("phd-provisioning", &Default::default())
                .await
                .expect("release");
        }
        assert!(
            !repo
                .phd(&plane.admin_kubeconfig)
                .args(["instance", "backups", &name, "-o", "name"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("p2"))
                .expect("list")
        );

        // An ApplicationSet of the old kind owns the instance's Application.
        let sets: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "argocd",
            &argo::Kind::ApplicationSet.resource(),
        );
        let set_name = format!("phd-instances-{name}");
        let set: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ApplicationSet",
            "metadata": {"name": set_name, "namespace": "argocd"},
            "spec": {
                "generators": [{"list": {"elements": []}}],
                "template": {
                    "metadata": {"name": "{{name}}"},
                    "spec": {
                        "project": "default",
                        "source": {"repoURL": "https://example.org/x.git"},
                        "destination": {"server": "https://kubernetes.default.svc"},
                    },
                },
            },
        }))
        .expect("ApplicationSet");
        let made = sets
            .create(&Default::default(), &set)
            .await
            .expect("create the ApplicationSet");
        let applications: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "argocd",
            &argo::Kind::Application.resource(),
        );
        applications
            .patch(
                &format!("{name}-production"),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": [{
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "ApplicationSet",
                    "name": set_name,
                    "uid": made.metadata.uid.clone().expect("uid"),
                }]}})),
            )
            .await
            .expect("own the Application");
        let (lms, _) = replicas(&client, &name, "lms").await;
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args([
                "instance",
                "restore",
                &name,
                "--from",
                "p1",
                "--yes",
                "--timeout",
                "60s",
            ])
            .assert()
            .code(1)
            .stderr(predicates::str::contains("would undo the pause"))
            .stderr(predicates::str::contains(
                "/spec/syncPolicy/automated/enabled",
            ));
        assert_eq!(replicas(&client, &name, "lms").await, (lms, None));
        assert!(automated(&client, &name).await["enabled"].is_null());

        // With the rule the cluster repository's ApplicationSet has now: it runs.
        sets.patch(
            &set_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"spec": {"ignoreApplicationDifferences": [
                    {"jsonPointers": ["/spec/syncPolicy/automated/enabled"]}
                ]}}),
            ),
        )
        .await
        .expect("add the rule");
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_BACKUP_BUCKET", BACKUPS)
            .args([
                "instance",
                "restore",
                &name,
                "--from",
                "p1",
                "--yes",
                "--timeout",
                "60s",
            ])
            .assert()
            .success();
        assert_eq!(replicas(&client, &name, "lms").await, (lms, None));
        sets.delete(&set_name, &Default::default())
            .await
            .expect("delete the ApplicationSet");
    }
}
