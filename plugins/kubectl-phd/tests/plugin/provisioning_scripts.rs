//! The scripts of the shipped provisioning ClusterWorkflowTemplates
//! (manifests/workflow-templates), run as their containers would run them
//! (the exact `source`, `sh`, only the environment the template sets; see
//! `phd_testkit::scripts`) against real servers: MariaDB for MySQL, moto's
//! S3 server with the AWS CLI for buckets, and stub servers that check every
//! request against the documented DigitalOcean and Atlas APIs for MongoDB.
//!
//! Every run is searched for the Secret values it was given (root and user
//! passwords, API token and keys, S3 secret key); a run that prints one fails.
//!
//! Needs what scripts/install-test-tools installs: MariaDB, busybox, moto and
//! the AWS CLI. Each test starts its own servers, stopped when it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use md5::{Digest as _, Md5};
use phd_testkit::http::{Exchange, HttpStub, Request, Response};
use phd_testkit::mariadb::{MariaDb, sql_identifier, sql_string};
use phd_testkit::s3::{ACCESS_KEY_ID, S3Server};
use phd_testkit::scripts::{Inputs, Run, Template};
use phd_testkit::{free_port, unique_name};
use serde_json::{Value, json};

const PROVISIONING: &str = "phd-provisioning";
const CREDENTIALS: &str = "phd-instance-credentials";

fn template(name: &str) -> Template {
    Template::load(name).unwrap_or_else(|e| panic!("load {name}: {e:?}"))
}

#[track_caller]
fn run(template: &Template, inputs: &Inputs) -> Run {
    template
        .run(inputs)
        .unwrap_or_else(|e| panic!("{}: {e:?}", template.name))
}

// ---------------------------------------------------------------- MySQL

/// Quotes, dollars, backticks, a backslash and spaces: the root password
/// travels through the environment (MYSQL_PWD) and must survive all of them.
const ROOT_PASSWORD: &str = "r00t 'pw' \"q\" $HOME `id` \\ ;";

fn mysql_inputs(server: &MariaDb, database: &str, username: &str, password: &str) -> Inputs {
    Inputs::new()
        .secret(PROVISIONING, "mysql-database", database)
        .secret(PROVISIONING, "mysql-user", username)
        .secret(PROVISIONING, "mysql-host", "127.0.0.1")
        .secret(PROVISIONING, "mysql-port", server.port.to_string())
        .secret(PROVISIONING, "mysql-root-user", "root")
        .secret(PROVISIONING, "mysql-root-password", &server.root_password)
        .secret(CREDENTIALS, "mysql-password", password)
}

/// Runs SQL as the server's superuser over its socket, backslashes as escapes.
fn admin(server: &MariaDb, sql: &str) -> String {
    server
        .socket_sql(&format!("SET SESSION sql_mode = ''; {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

fn databases(server: &MariaDb) -> BTreeSet<String> {
    admin(server, "SHOW DATABASES")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn user_exists(server: &MariaDb, user: &str) -> bool {
    let count = admin(
        server,
        &format!(
            "SELECT COUNT(*) FROM mysql.user WHERE User = {} AND Host = '%'",
            sql_string(user)
        ),
    );
    count.trim() == "1"
}

/// The user's grants on databases (not the `USAGE` line, which shows the password's hash).
fn grants(server: &MariaDb, user: &str) -> Vec<String> {
    admin(server, &format!("SHOW GRANTS FOR {}@'%'", sql_string(user)))
        .lines()
        .filter(|line| !line.starts_with("GRANT USAGE ON *.*"))
        .map(str::to_owned)
        .collect()
}

/// The new user logs in over TCP, makes a table in its database and reads it back.
#[track_caller]
fn assert_user_can_work(server: &MariaDb, database: &str, user: &str, password: &str) {
    let table = format!("{}.{}", sql_identifier(database), unique_table());
    let output = server
        .tcp_sql(
            user,
            password,
            &format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY, title VARCHAR(40));
                 INSERT INTO {table} VALUES (1, 'ok');
                 SELECT title FROM {table};"
            ),
        )
        .unwrap_or_else(|e| panic!("{user:?} cannot work in {database:?}: {e}"));
    assert_eq!(output, "ok\n");
}

fn unique_table() -> String {
    unique_name("t").replace('-', "_")
}

#[test]
fn mysql_provision_makes_database_user_and_grants_and_converges() {
    let server = MariaDb::start(ROOT_PASSWORD, &[]).expect("start MariaDB");
    admin(
        &server,
        "CREATE DATABASE keep; CREATE TABLE keep.t (id INT); INSERT INTO keep.t VALUES (7)",
    );
    let provision = template("mysql-provision-template");
    let deprovision = template("mysql-deprovision-template");
    let (database, user) = ("phd-demo-openedx", "phd-demo");
    let (first, second) = ("first-Password-1", "second-Password-2");

    let created = run(&provision, &mysql_inputs(&server, database, user, first));
    created.assert_success();
    assert!(created.stdout.contains("are ready"), "{created}");
    assert!(databases(&server).contains(database));
    assert_eq!(
        admin(
            &server,
            &format!(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                sql_string(database)
            )
        ),
        "utf8mb4\tutf8mb4_unicode_ci\n"
    );
    assert!(user_exists(&server, user));
    let granted = grants(&server, user);
    assert_eq!(
        granted,
        ["GRANT ALL PRIVILEGES ON `phd-demo-openedx`.* TO `phd-demo`@`%`"]
    );
    assert_user_can_work(&server, database, user, first);
    // Only its own database.
    let other = server.tcp_sql(user, first, "SELECT * FROM keep.t");
    assert!(
        other.as_ref().is_err_and(|e| e.contains("denied")),
        "{other:?}"
    );

    // A second run succeeds and changes nothing.
    let databases_before = databases(&server);
    run(&provision, &mysql_inputs(&server, database, user, first)).assert_success();
    assert_eq!(databases(&server), databases_before);
    assert_eq!(grants(&server, user), granted);
    assert_user_can_work(&server, database, user, first);

    // A changed password is applied; the old one stops working.
    run(&provision, &mysql_inputs(&server, database, user, second)).assert_success();
    assert_user_can_work(&server, database, user, second);
    let old = server.tcp_sql(user, first, "SELECT 1");
    assert!(
        old.as_ref().is_err_and(|e| e.contains("Access denied")),
        "{old:?}"
    );
    assert_eq!(grants(&server, user), granted);

    // Deprovision removes both, and only them; a second run is fine.
    let removed = run(&deprovision, &mysql_inputs(&server, database, user, second));
    removed.assert_success();
    assert!(removed.stdout.contains("are gone"), "{removed}");
    assert!(!databases(&server).contains(database));
    assert!(!user_exists(&server, user));
    assert_eq!(admin(&server, "SELECT id FROM keep.t"), "7\n");
    run(&deprovision, &mysql_inputs(&server, database, user, second)).assert_success();
    assert!(!databases(&server).contains(database));
}

/// A file that a value run as a shell command would create; removed when dropped.
struct Marker(std::path::PathBuf);

impl Marker {
    fn new() -> Self {
        Self(std::path::Path::new("/tmp").join(unique_name("m")))
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Names and passwords with quotes, backticks, dollars, backslashes, spaces,
/// an SQL injection and shell command substitutions work as plain text.
fn special_characters_cannot_inject(server_args: &[&str]) {
    let server = MariaDb::start(ROOT_PASSWORD, server_args).expect("start MariaDB");
    admin(
        &server,
        "CREATE DATABASE keep; CREATE TABLE keep.t (id INT); INSERT INTO keep.t VALUES (7)",
    );
    // Short (names have length limits) and absolute (the script runs elsewhere).
    let marker = Marker::new();
    let m = marker.0.display();
    // `_` and `%` are wildcards in GRANT: the user must get this database, not lookalikes.
    let database = format!("d_b% `b` 'q' \"d\" $HOME \\ $(touch {m})");
    let lookalike = database.replacen('_', "X", 1).replacen('%', "YZ", 1);
    let user = format!("u'; DROP DATABASE keep; -- `touch {m}` \"y\" \\");
    let password =
        format!("p'; DROP DATABASE keep; -- $(touch {m}) `touch {m}` \"q\" \\' \\ $HOME end\\");
    assert!(database.len() <= 64 && user.len() <= 80);
    admin(
        &server,
        &format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT)",
            db = sql_identifier(&lookalike)
        ),
    );
    let provision = template("mysql-provision-template");
    let deprovision = template("mysql-deprovision-template");
    let inputs = mysql_inputs(&server, &database, &user, &password);

    run(&provision, &inputs).assert_success();
    assert!(
        databases(&server).contains(&database),
        "{:?}",
        databases(&server)
    );
    assert!(user_exists(&server, &user));
    assert_user_can_work(&server, &database, &user, &password);
    let lookalike_table = format!("SELECT * FROM {}.t", sql_identifier(&lookalike));
    let denied = server.tcp_sql(&user, &password, &lookalike_table);
    assert!(
        denied.as_ref().is_err_and(|e| e.contains("denied")),
        "{denied:?}"
    );
    run(&provision, &inputs).assert_success();
    assert_user_can_work(&server, &database, &user, &password);

    run(&deprovision, &inputs).assert_success();
    assert!(!databases(&server).contains(&database));
    assert!(!user_exists(&server, &user));
    assert_eq!(admin(&server, "SELECT id FROM keep.t"), "7\n");
    assert!(!marker.0.exists(), "a value was run as a shell command");
}

#[test]
fn mysql_special_characters_cannot_inject_sql_or_shell() {
    special_characters_cannot_inject(&[]);
}

/// Backslashes are escapes in the scripts' SQL even where the server's
/// default `sql_mode` says otherwise (and double quotes quote identifiers).
#[test]
fn mysql_special_characters_with_no_backslash_escapes_and_ansi_quotes() {
    special_characters_cannot_inject(&["--sql-mode=ANSI_QUOTES,NO_BACKSLASH_ESCAPES"]);
}

#[test]
fn mysql_scripts_fail_loudly_on_unreachable_server_wrong_credentials_or_missing_values() {
    let server = MariaDb::start(ROOT_PASSWORD, &[]).expect("start MariaDB");
    let provision = template("mysql-provision-template");
    let deprovision = template("mysql-deprovision-template");
    let (database, user, password) = ("phd-x-openedx", "phd-x", "user-Password-1");
    let at = format!("127.0.0.1:{}", server.port);

    for script in [&provision, &deprovision] {
        let wrong = mysql_inputs(&server, database, user, password).secret(
            PROVISIONING,
            "mysql-root-password",
            "wrong-root-password",
        );
        run(script, &wrong).assert_failure_mentioning(&["Access denied", &at]);

        let port = free_port().expect("free port").to_string();
        let unreachable = mysql_inputs(&server, database, user, password).secret(
            PROVISIONING,
            "mysql-port",
            &port,
        );
        run(script, &unreachable)
            .assert_failure_mentioning(&["Can't connect", &format!("127.0.0.1:{port}")]);

        let no_root_password = mysql_inputs(&server, database, user, password).secret(
            PROVISIONING,
            "mysql-root-password",
            "",
        );
        run(script, &no_root_password)
            .assert_failure_mentioning(&["phd-provisioning has no mysql-root-password"]);

        let no_database = mysql_inputs(&server, "", user, password);
        run(script, &no_database)
            .assert_failure_mentioning(&["phd-provisioning has no mysql-database"]);
    }
    let no_password = mysql_inputs(&server, database, user, "");
    run(&provision, &no_password)
        .assert_failure_mentioning(&["phd-instance-credentials has no mysql-password"]);
    assert!(!databases(&server).contains(database));
    assert!(!user_exists(&server, user));
}

/// A server that takes only TLS connections: with the CA of its certificate
/// the scripts connect, verified; with another CA they fail, naming the
/// server, before changing anything; without a CA they connect unverified.
#[test]
fn mysql_scripts_verify_the_server_with_a_given_ca() {
    let tls = phd_testkit::TestTls::generate().expect("certificates");
    let other = phd_testkit::TestTls::generate().expect("other certificates");
    let files = tempfile::tempdir().expect("certificate directory");
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).expect("write certificate");
        format!("{}", path.display())
    };
    let certificate = write("server.pem", &tls.certificate);
    let key = write("server.key", &tls.key);
    let server = MariaDb::start(
        ROOT_PASSWORD,
        &[
            &format!("--ssl-cert={certificate}"),
            &format!("--ssl-key={key}"),
            "--require-secure-transport=ON",
        ],
    )
    .expect("start MariaDB with TLS");
    let provision = template("mysql-provision-template");
    let deprovision = template("mysql-deprovision-template");
    let (database, user, password) = ("phd-tls-openedx", "phd-tls", "user-Password-1");
    let with_ca = |ca: &str| {
        mysql_inputs(&server, database, user, password).secret(
            PROVISIONING,
            "mysql-ca-certificate",
            ca,
        )
    };

    // The server refuses connections without TLS, so every success below went over TLS.
    assert_eq!(
        admin(&server, "SELECT @@require_secure_transport").trim(),
        "1"
    );

    let wrong = run(&provision, &with_ca(&other.ca));
    wrong.assert_failure_mentioning(&[&format!("127.0.0.1:{}", server.port)]);
    assert!(
        !user_exists(&server, user),
        "nothing made over an unverified connection"
    );

    // Without a CA: encrypted, not verified.
    run(&provision, &mysql_inputs(&server, database, user, password)).assert_success();
    assert!(user_exists(&server, user));
    run(&deprovision, &with_ca(&tls.ca)).assert_success();
    assert!(!user_exists(&server, user));

    run(&provision, &with_ca(&tls.ca)).assert_success();
    assert!(databases(&server).contains(database));
    assert!(user_exists(&server, user));
    run(&deprovision, &with_ca(&tls.ca)).assert_success();
    assert!(!databases(&server).contains(database));
    assert!(!user_exists(&server, user));
}

// ---------------------------------------------------------------- storage

const S3_SECRET: &str = "phd-test-s3-secret-0123456789";

fn storage_inputs(endpoint: &str, bucket: &str, kind: &str, region: &str) -> Inputs {
    Inputs::new()
        .secret(PROVISIONING, "bucket", bucket)
        .secret(PROVISIONING, "storage-type", kind)
        .secret(PROVISIONING, "storage-region", region)
        .secret(PROVISIONING, "storage-endpoint-url", endpoint)
        .secret(PROVISIONING, "storage-access-key-id", ACCESS_KEY_ID)
        .secret(PROVISIONING, "storage-secret-access-key", S3_SECRET)
}

fn with_flags(inputs: Inputs, versioning: bool, public: bool) -> Inputs {
    inputs
        .secret(PROVISIONING, "storage-versioning", versioning.to_string())
        .secret(PROVISIONING, "storage-public", public.to_string())
}

#[track_caller]
fn s3api(s3: &S3Server, args: &[&str]) -> Value {
    s3.s3api(args)
        .unwrap_or_else(|e| panic!("aws s3api {}: {e}", args.join(" ")))
}

fn versioning_status(s3: &S3Server, bucket: &str) -> Option<String> {
    s3api(s3, &["get-bucket-versioning", "--bucket", bucket])["Status"]
        .as_str()
        .map(str::to_owned)
}

fn public_access_block(s3: &S3Server, bucket: &str) -> Result<Value, String> {
    s3.s3api(&["get-public-access-block", "--bucket", bucket])
        .map(|v| v["PublicAccessBlockConfiguration"].clone())
}

fn all_users_grants(s3: &S3Server, bucket: &str) -> Vec<String> {
    let acl = s3api(s3, &["get-bucket-acl", "--bucket", bucket]);
    acl["Grants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["Grantee"]["URI"] == "http://acs.amazonaws.com/groups/global/AllUsers")
        .filter_map(|g| g["Permission"].as_str().map(str::to_owned))
        .collect()
}

#[track_caller]
fn assert_bucket_gone(s3: &S3Server, bucket: &str) {
    let head = s3.s3api(&["head-bucket", "--bucket", bucket]);
    assert!(
        head.as_ref()
            .is_err_and(|e| e.contains("404") || e.contains("Not Found")),
        "{head:?}"
    );
}

fn blocked() -> Value {
    json!({
        "BlockPublicAcls": true,
        "IgnorePublicAcls": true,
        "BlockPublicPolicy": true,
        "RestrictPublicBuckets": true,
    })
}

#[test]
fn s3_bucket_is_private_and_unversioned_by_default_and_deprovision_removes_it() {
    let s3 = S3Server::start().expect("start the S3 server");
    let provision = template("storage-provision-template");
    let deprovision = template("storage-deprovision-template");
    let bucket = unique_name("phd-plain");
    let inputs = storage_inputs(&s3.endpoint, &bucket, "s3", "us-east-1");

    let created = run(&provision, &inputs);
    created.assert_success();
    assert!(created.stdout.contains("created bucket"), "{created}");
    let check = |s3: &S3Server| {
        assert_eq!(versioning_status(s3, &bucket), None);
        assert_eq!(public_access_block(s3, &bucket), Ok(blocked()));
        assert!(all_users_grants(s3, &bucket).is_empty());
        assert!(
            s3.s3api(&["get-bucket-policy", "--bucket", &bucket])
                .is_err()
        );
        assert_eq!(
            s3api(s3, &["get-bucket-location", "--bucket", &bucket])["LocationConstraint"],
            Value::Null
        );
    };
    check(&s3);
    s3.put_object(&bucket, "media/hello.txt", b"hello")
        .expect("put an object");
    assert_eq!(
        s3.get_object(&bucket, "media/hello.txt").expect("get it"),
        b"hello"
    );

    let again = run(&provision, &inputs);
    again.assert_success();
    assert!(again.stdout.contains("exists"), "{again}");
    check(&s3);
    assert_eq!(
        s3.get_object(&bucket, "media/hello.txt")
            .expect("still there"),
        b"hello"
    );

    let removed = run(&deprovision, &inputs);
    removed.assert_success();
    assert!(removed.stdout.contains("is gone"), "{removed}");
    assert_bucket_gone(&s3, &bucket);
    let twice = run(&deprovision, &inputs);
    twice.assert_success();
    assert!(twice.stdout.contains("already gone"), "{twice}");

    // A bucket that is gone is made again.
    run(&provision, &inputs).assert_success();
    s3api(&s3, &["head-bucket", "--bucket", &bucket]);
    run(&deprovision, &inputs).assert_success();
}

#[test]
fn s3_bucket_versioned_and_public_in_another_region_then_emptied_of_every_version() {
    let s3 = S3Server::start().expect("start the S3 server");
    let provision = template("storage-provision-template");
    let deprovision = template("storage-deprovision-template");
    let bucket = unique_name("phd-versioned");
    let inputs = storage_inputs(&s3.endpoint, &bucket, "s3", "eu-west-1");

    run(&provision, &with_flags(inputs.clone(), true, true)).assert_success();
    assert_eq!(
        s3api(&s3, &["get-bucket-location", "--bucket", &bucket])["LocationConstraint"],
        "eu-west-1"
    );
    assert_eq!(versioning_status(&s3, &bucket).as_deref(), Some("Enabled"));
    let block = public_access_block(&s3, &bucket);
    assert!(
        block
            .as_ref()
            .is_err_and(|e| e.contains("NoSuchPublicAccessBlockConfiguration")),
        "{block:?}"
    );
    let policy = s3api(&s3, &["get-bucket-policy", "--bucket", &bucket]);
    let policy: Value =
        serde_json::from_str(policy["Policy"].as_str().expect("policy text")).expect("JSON");
    assert_eq!(
        policy["Statement"],
        json!([{
            "Sid": "PublicReadObjects",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
        }])
    );
    // Objects, not the listing, are public: no ACL grants to everyone.
    assert!(all_users_grants(&s3, &bucket).is_empty());

    for version in ["one", "two", "three"] {
        s3.put_object(&bucket, "course/a.txt", version.as_bytes())
            .expect("put a version");
    }
    s3.put_object(&bucket, "course/b c+d.txt", b"b")
        .expect("put");
    s3api(
        &s3,
        &[
            "delete-object",
            "--bucket",
            &bucket,
            "--key",
            "course/a.txt",
        ],
    );
    let versions = s3api(&s3, &["list-object-versions", "--bucket", &bucket]);
    assert_eq!(versions["Versions"].as_array().map(Vec::len), Some(4));
    assert_eq!(versions["DeleteMarkers"].as_array().map(Vec::len), Some(1));

    // Provisioning again as configured changes nothing; configured off, it
    // suspends versioning and blocks public access.
    run(&provision, &with_flags(inputs.clone(), true, true)).assert_success();
    assert_eq!(versioning_status(&s3, &bucket).as_deref(), Some("Enabled"));
    run(&provision, &with_flags(inputs.clone(), false, false)).assert_success();
    assert_eq!(
        versioning_status(&s3, &bucket).as_deref(),
        Some("Suspended")
    );
    assert_eq!(public_access_block(&s3, &bucket), Ok(blocked()));

    // Enabled again before emptying: moto 5.2.5 answers HTTP 500 to deleting the
    // versions of a bucket whose versioning is suspended (AttributeError on a
    // delete marker), which S3 does not.
    run(&provision, &with_flags(inputs.clone(), true, false)).assert_success();
    s3.put_object(&bucket, "course/a.txt", b"four")
        .expect("put");
    run(&deprovision, &inputs).assert_success();
    assert_bucket_gone(&s3, &bucket);
    run(&deprovision, &inputs).assert_success();
}

#[test]
fn spaces_bucket_private_by_acl_then_public_then_removed() {
    let s3 = S3Server::start().expect("start the S3 server");
    let provision = template("storage-provision-template");
    let deprovision = template("storage-deprovision-template");
    let bucket = unique_name("phd-spaces");
    let inputs = storage_inputs(&s3.endpoint, &bucket, "spaces", "nyc3");

    let created = run(&provision, &with_flags(inputs.clone(), false, false));
    created.assert_success();
    assert!(created.stdout.contains("is private"), "{created}");
    s3api(&s3, &["head-bucket", "--bucket", &bucket]);
    assert!(all_users_grants(&s3, &bucket).is_empty());
    assert_eq!(versioning_status(&s3, &bucket), None);
    s3.put_object(&bucket, "x.txt", b"x").expect("put");

    run(&provision, &with_flags(inputs.clone(), true, true)).assert_success();
    assert_eq!(all_users_grants(&s3, &bucket), ["READ"]);
    assert_eq!(versioning_status(&s3, &bucket).as_deref(), Some("Enabled"));
    s3.put_object(&bucket, "x.txt", b"y").expect("put");
    run(&provision, &with_flags(inputs.clone(), true, false)).assert_success();
    assert!(all_users_grants(&s3, &bucket).is_empty());

    run(&deprovision, &inputs).assert_success();
    assert_bucket_gone(&s3, &bucket);
    run(&deprovision, &inputs).assert_success();
}

/// Without an endpoint-url, Spaces' endpoint follows from the region, and S3's
/// is AWS's for the region. Seen through a proxy that records where the AWS
/// CLI connects and lets nothing through.
#[test]
fn storage_endpoint_follows_from_type_and_region_when_not_given() {
    let proxy = HttpStub::start(|_| Response::empty(403)).expect("start the proxy");
    let provision = template("storage-provision-template");
    let deprovision = template("storage-deprovision-template");
    let bucket = unique_name("phd-endpoint");
    for (kind, region, host) in [
        ("spaces", "ams3", "ams3.digitaloceanspaces.com:443"),
        ("s3", "eu-west-1", "s3.eu-west-1.amazonaws.com:443"),
    ] {
        for script in [&provision, &deprovision] {
            proxy.clear();
            let mut inputs = storage_inputs("", &bucket, kind, region)
                .extra_env("HTTPS_PROXY", proxy.url())
                .extra_env("https_proxy", proxy.url())
                .extra_env("AWS_MAX_ATTEMPTS", "1");
            if script.name == provision.name {
                inputs = with_flags(inputs, false, false);
            }
            run(script, &inputs).assert_failure_mentioning(&[&format!(
                "cannot tell whether bucket {bucket} exists"
            )]);
            let targets: Vec<String> = proxy
                .exchanges()
                .into_iter()
                .map(|e| format!("{} {}", e.request.method, e.request.target))
                .collect();
            assert!(
                !targets.is_empty(),
                "{kind}: no connection through the proxy"
            );
            for target in &targets {
                assert!(
                    target == &format!("CONNECT {host}")
                        || target == &format!("CONNECT {bucket}.{host}"),
                    "{kind} in {region}: {target}"
                );
            }
        }
    }
}

#[test]
fn storage_scripts_fail_loudly_on_bad_values_or_unreachable_endpoint() {
    let provision = template("storage-provision-template");
    let deprovision = template("storage-deprovision-template");
    let port = free_port().expect("free port");
    let endpoint = format!("http://127.0.0.1:{port}");
    let bucket = unique_name("phd-fail");
    for script in [&provision, &deprovision] {
        let base = || {
            let inputs = storage_inputs(&endpoint, &bucket, "s3", "us-east-1");
            if script.name == provision.name {
                with_flags(inputs, false, false)
            } else {
                inputs
            }
        };
        run(script, &base()).assert_failure_mentioning(&[
            &format!("cannot tell whether bucket {bucket} exists"),
            &endpoint,
        ]);
        run(script, &base().secret(PROVISIONING, "storage-type", "gcs"))
            .assert_failure_mentioning(&["unknown storage type 'gcs'"]);
        run(script, &base().secret(PROVISIONING, "bucket", "Bad_Bucket"))
            .assert_failure_mentioning(&["bucket name 'Bad_Bucket'"]);
        run(
            script,
            &base().secret(PROVISIONING, "storage-secret-access-key", ""),
        )
        .assert_failure_mentioning(&["phd-provisioning has no storage-secret-access-key"]);
    }
    run(
        &provision,
        &with_flags(
            storage_inputs(&endpoint, &bucket, "s3", "us-east-1"),
            false,
            false,
        )
        .secret(PROVISIONING, "storage-versioning", "yes"),
    )
    .assert_failure_mentioning(&[
        "storage-versioning of the Secret phd-provisioning is 'yes': expected true or false",
    ]);
}

// ---------------------------------------------------------------- MongoDB

const DO_TOKEN: &str = "dop_v1_phdtesttoken0123456789abcdef";
const DO_CLUSTER: &str = "9cc10173-e9ea-4176-9dbc-a4cee4c4ff30";
const ATLAS_PUBLIC_KEY: &str = "phdpubkey";
const ATLAS_PRIVATE_KEY: &str = "7e3c5b2a-phd-private-key-0123";
const ATLAS_GROUP: &str = "5e2211c17a3e5a48f5497de3";
const ATLAS_CLUSTER: &str = "Cluster0";
const ATLAS_VERSION: &str = "application/vnd.atlas.2023-01-01+json";

struct MongoNames {
    database: String,
    forum: String,
    user: String,
}

impl MongoNames {
    fn plain(instance: &str) -> Self {
        Self {
            database: format!("phd-{instance}-openedx"),
            forum: format!("phd-{instance}-forum"),
            user: format!("phd-{instance}"),
        }
    }
}

fn mongo_inputs(provider: &str, api: &str, names: &MongoNames, password: &str) -> Inputs {
    Inputs::new()
        .secret(PROVISIONING, "mongodb-provider", provider)
        .secret(PROVISIONING, "mongodb-database", &names.database)
        .secret(PROVISIONING, "mongodb-forum-database", &names.forum)
        .secret(PROVISIONING, "mongodb-user", &names.user)
        .secret(PROVISIONING, "digitalocean-cluster-id", DO_CLUSTER)
        .secret(PROVISIONING, "digitalocean-api-url", api)
        .secret(PROVISIONING, "atlas-project-id", ATLAS_GROUP)
        .secret(PROVISIONING, "atlas-cluster-name", ATLAS_CLUSTER)
        .secret(PROVISIONING, "atlas-api-url", api)
        .secret(PROVISIONING, "digitalocean-token", DO_TOKEN)
        .secret(PROVISIONING, "atlas-public-key", ATLAS_PUBLIC_KEY)
        .secret(PROVISIONING, "atlas-private-key", ATLAS_PRIVATE_KEY)
        .secret(CREDENTIALS, "mongodb-password", password)
}

/// One API call as the stub understood it: method, decoded path segments, JSON body.
type Call = (String, Vec<String>, Option<Value>);

fn calls(exchanges: &[Exchange]) -> Vec<Call> {
    exchanges
        .iter()
        .map(|e| {
            (
                e.request.method.clone(),
                e.request.segments().expect("a path that decodes"),
                e.request.json(),
            )
        })
        .collect()
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// The DigitalOcean databases API, as documented for MongoDB clusters
/// (docs.digitalocean.com/reference/api: Databases): bearer token, JSON in
/// and out, `{"id", "message"}` errors, 201 on create, 204 on delete, 404 for
/// what does not exist. A duplicate is answered 422 (the API's answer to an
/// invalid request; the documentation names no other).
struct DigitalOcean {
    engine: &'static str,
    dbs: BTreeSet<String>,
    users: BTreeMap<String, Value>,
    generated: Vec<String>,
}

fn do_error(status: u16, id: &str, message: &str) -> Response {
    Response::json(status, &json!({"id": id, "message": message}))
}

impl Default for DigitalOcean {
    fn default() -> Self {
        Self {
            engine: "mongodb",
            dbs: BTreeSet::new(),
            users: BTreeMap::new(),
            generated: Vec::new(),
        }
    }
}

impl DigitalOcean {
    fn handle(&mut self, request: &Request) -> Response {
        if request.header("Authorization") != Some(&format!("Bearer {DO_TOKEN}")) {
            return do_error(401, "unauthorized", "Unable to authenticate you.");
        }
        let not_found = || {
            do_error(
                404,
                "not_found",
                "The resource you were accessing could not be found.",
            )
        };
        let Some(segments) = request.segments() else {
            return do_error(400, "bad_request", "path is not UTF-8");
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let ["v2", "databases", cluster, rest @ ..] = segments.as_slice() else {
            return not_found();
        };
        if *cluster != DO_CLUSTER {
            return not_found();
        }
        let body = if request.method == "POST" {
            if request.header("Content-Type") != Some("application/json") {
                return do_error(415, "unsupported_media_type", "expected application/json");
            }
            match request.json() {
                Some(body @ Value::Object(_)) => Some(body),
                _ => return do_error(400, "bad_request", "The request body is not valid JSON."),
            }
        } else {
            None
        };
        let invalid = |message: &str| do_error(422, "unprocessable_entity", message);
        match (request.method.as_str(), rest) {
            ("GET", []) => Response::json(
                200,
                &json!({"database": {
                    "id": DO_CLUSTER,
                    "name": "phd-databases",
                    "engine": self.engine,
                    "version": "7",
                    "status": "online",
                    "connection": {"user": "doadmin", "password": "do-admin-connection-password"},
                }}),
            ),
            ("GET", ["dbs", name]) if self.dbs.contains(*name) => {
                Response::json(200, &json!({"db": {"name": name}}))
            }
            ("POST", ["dbs"]) => {
                let body = body.unwrap_or_default();
                let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
                    return invalid("name is required");
                };
                if body.as_object().is_some_and(|o| o.len() != 1) {
                    return invalid("unknown attribute");
                }
                if !self.dbs.insert(name.to_owned()) {
                    return invalid("database already exists");
                }
                Response::json(201, &json!({"db": {"name": name}}))
            }
            ("DELETE", ["dbs", name]) if self.dbs.remove(*name) => Response::empty(204),
            ("GET", ["users", name]) => match self.users.get(*name) {
                Some(user) => Response::json(200, &json!({"user": user})),
                None => not_found(),
            },
            ("POST", ["users"]) => {
                let body = body.unwrap_or_default();
                let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
                    return invalid("name is required");
                };
                if body.as_object().is_some_and(|o| {
                    o.keys()
                        .any(|k| !["name", "settings", "readonly"].contains(&k.as_str()))
                }) {
                    return invalid("unknown attribute");
                }
                let settings = &body["settings"]["mongo_user_settings"];
                let databases_ok = settings["databases"]
                    .as_array()
                    .is_some_and(|d| !d.is_empty() && d.iter().all(Value::is_string));
                let role_ok = ["readOnly", "readWrite", "dbAdmin"]
                    .contains(&settings["role"].as_str().unwrap_or_default());
                if !databases_ok || !role_ok {
                    return invalid("invalid mongo_user_settings");
                }
                if self.users.contains_key(name) {
                    return invalid("user already exists");
                }
                let password = unique_name("do-generated-password");
                self.generated.push(password.clone());
                let user = json!({
                    "name": name,
                    "role": "normal",
                    "password": password,
                    "settings": body["settings"],
                });
                self.users.insert(name.to_owned(), user.clone());
                Response::json(201, &json!({"user": user}))
            }
            ("DELETE", ["users", name]) if self.users.remove(*name).is_some() => {
                Response::empty(204)
            }
            _ => not_found(),
        }
    }
}

/// The Atlas Administration API v2, databaseUsers resource version 2023-01-01:
/// HTTP digest authentication with the API key pair, the versioned media
/// type, `{"error", "errorCode", "reason", "detail"}` errors, 201 on create,
/// 409 USER_ALREADY_EXISTS, 404 USERNAME_NOT_FOUND, 204 on delete.
#[derive(Default)]
struct Atlas {
    users: BTreeMap<String, Value>,
    nonces: BTreeSet<String>,
}

fn atlas_error(status: u16, code: &str, reason: &str, detail: &str) -> Response {
    Response::json(
        status,
        &json!({"detail": detail, "error": status, "errorCode": code, "parameters": [], "reason": reason}),
    )
    .header("Content-Type", ATLAS_VERSION)
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `key="value", key=value, ...` of a Digest Authorization header.
fn digest_parameters(header: &str) -> Option<BTreeMap<String, String>> {
    let mut rest = header.strip_prefix("Digest ")?.trim();
    let mut parameters = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, a)| (v, a))
        };
        parameters.insert(key.trim().to_owned(), value.to_owned());
        rest = after.trim_start_matches([',', ' ']);
    }
    Some(parameters)
}

impl Atlas {
    const REALM: &str = "MMS Public API";

    fn authorized(&self, request: &Request) -> bool {
        let Some(p) = request.header("Authorization").and_then(digest_parameters) else {
            return false;
        };
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
        if get("username") != ATLAS_PUBLIC_KEY
            || get("realm") != Self::REALM
            || !self.nonces.contains(get("nonce"))
            || get("uri") != request.target
            || get("qop") != "auth"
        {
            return false;
        }
        let ha1 = md5_hex(&format!(
            "{ATLAS_PUBLIC_KEY}:{}:{ATLAS_PRIVATE_KEY}",
            Self::REALM
        ));
        let ha2 = md5_hex(&format!("{}:{}", request.method, request.target));
        let expected = md5_hex(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            get("nonce"),
            get("nc"),
            get("cnonce")
        ));
        get("response") == expected
    }

    fn validate_user(body: &Value, username: Option<&str>) -> Result<(), Response> {
        let invalid =
            |detail: &str| Err(atlas_error(400, "INVALID_ATTRIBUTE", "Bad Request", detail));
        let Some(object) = body.as_object() else {
            return invalid("body is not a JSON object");
        };
        let known = [
            "databaseName",
            "groupId",
            "username",
            "password",
            "roles",
            "scopes",
            "labels",
            "awsIAMType",
            "ldapAuthType",
            "oidcAuthType",
            "x509Type",
            "deleteAfterDate",
        ];
        if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return invalid(&format!("unknown attribute {key}"));
        }
        if body["databaseName"] != "admin" {
            return invalid("databaseName must be admin for SCRAM users");
        }
        if body["groupId"] != ATLAS_GROUP {
            return invalid("groupId is required and must match the path");
        }
        let Some(name) = body["username"].as_str().filter(|n| !n.is_empty()) else {
            return invalid("username is required");
        };
        if username.is_some_and(|u| u != name) {
            return invalid("username cannot change");
        }
        if body["password"].as_str().is_none_or(|p| p.len() < 8) {
            return invalid("password must have at least 8 characters");
        }
        let roles_ok = body["roles"].as_array().is_some_and(|roles| {
            !roles.is_empty()
                && roles.iter().all(|r| {
                    r["databaseName"].as_str().is_some_and(|d| !d.is_empty())
                        && r["roleName"].as_str().is_some_and(|n| !n.is_empty())
                })
        });
        let scopes_ok = body["scopes"].as_array().is_some_and(|scopes| {
            scopes.iter().all(|s| {
                s["name"].as_str().is_some_and(|n| !n.is_empty())
                    && ["CLUSTER", "DATA_LAKE"].contains(&s["type"].as_str().unwrap_or_default())
            })
        });
        if !roles_ok || !scopes_ok {
            return invalid("invalid roles or scopes");
        }
        Ok(())
    }

    fn handle(&mut self, request: &Request) -> Response {
        if !self.authorized(request) {
            let nonce = unique_name("nonce");
            self.nonces.insert(nonce.clone());
            return Response::empty(401).header(
                "WWW-Authenticate",
                &format!(
                    "Digest realm=\"{}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale=false",
                    Self::REALM
                ),
            );
        }
        if request.header("Accept") != Some(ATLAS_VERSION) {
            return atlas_error(
                406,
                "INVALID_VERSION_DATE",
                "Not Acceptable",
                "The Accept header names no version of this resource.",
            );
        }
        let Some(segments) = request.segments() else {
            return atlas_error(400, "INVALID_PATH", "Bad Request", "path is not UTF-8");
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let [
            "api",
            "atlas",
            "v2",
            "groups",
            group,
            "databaseUsers",
            rest @ ..,
        ] = segments.as_slice()
        else {
            return atlas_error(404, "RESOURCE_NOT_FOUND", "Not Found", "no such resource");
        };
        if *group != ATLAS_GROUP {
            return atlas_error(404, "GROUP_NOT_FOUND", "Not Found", "no such project");
        }
        let body = if ["POST", "PATCH"].contains(&request.method.as_str()) {
            if !matches!(
                request.header("Content-Type"),
                Some(ATLAS_VERSION | "application/json")
            ) {
                return atlas_error(415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported Media Type", "");
            }
            request.json().unwrap_or_default()
        } else {
            Value::Null
        };
        let not_found = |name: &str| {
            atlas_error(
                404,
                "USERNAME_NOT_FOUND",
                "Not Found",
                &format!("No user with username {name} exists."),
            )
        };
        let public = |user: &Value| {
            let mut user = user.clone();
            if let Some(object) = user.as_object_mut() {
                object.remove("password");
            }
            user
        };
        match (request.method.as_str(), rest) {
            ("POST", []) => {
                if let Err(response) = Self::validate_user(&body, None) {
                    return response;
                }
                let name = body["username"].as_str().unwrap_or_default().to_owned();
                if self.users.contains_key(&name) {
                    return atlas_error(
                        409,
                        "USER_ALREADY_EXISTS",
                        "Conflict",
                        "The specified database user already exists.",
                    );
                }
                self.users.insert(name, body.clone());
                Response::json(201, &public(&body)).header("Content-Type", ATLAS_VERSION)
            }
            ("GET", ["admin", name]) => match self.users.get(*name) {
                Some(user) => Response::json(200, &public(user)),
                None => not_found(name),
            },
            ("PATCH", ["admin", name]) => {
                if !self.users.contains_key(*name) {
                    return not_found(name);
                }
                if let Err(response) = Self::validate_user(&body, Some(name)) {
                    return response;
                }
                self.users.insert((*name).to_owned(), body.clone());
                Response::json(200, &public(&body))
            }
            ("DELETE", ["admin", name]) => match self.users.remove(*name) {
                Some(_) => Response::empty(204),
                None => not_found(name),
            },
            _ => atlas_error(405, "METHOD_NOT_ALLOWED", "Method Not Allowed", ""),
        }
    }
}

fn start_digitalocean() -> (Arc<Mutex<DigitalOcean>>, HttpStub) {
    let api = Arc::new(Mutex::new(DigitalOcean::default()));
    let handler = api.clone();
    let stub = HttpStub::start(move |request| match handler.lock() {
        Ok(mut api) => api.handle(request),
        Err(_) => Response::empty(500),
    })
    .expect("start the DigitalOcean stub");
    (api, stub)
}

fn start_atlas() -> (Arc<Mutex<Atlas>>, HttpStub) {
    let api = Arc::new(Mutex::new(Atlas::default()));
    let handler = api.clone();
    let stub = HttpStub::start(move |request| match handler.lock() {
        Ok(mut api) => api.handle(request),
        Err(_) => Response::empty(500),
    })
    .expect("start the Atlas stub");
    (api, stub)
}

/// Every DigitalOcean request carries the token and asks for JSON.
#[track_caller]
fn assert_digitalocean_headers(exchanges: &[Exchange]) {
    for exchange in exchanges {
        let request = &exchange.request;
        assert_eq!(
            request.header("Authorization"),
            Some(format!("Bearer {DO_TOKEN}").as_str())
        );
        assert_eq!(request.header("Accept"), Some("application/json"));
    }
}

/// The Atlas calls that passed digest authentication; the others must be the
/// unauthenticated first halves of the digest exchange, and the private key
/// never travels.
#[track_caller]
fn atlas_calls(exchanges: &[Exchange]) -> Vec<(Call, u16)> {
    let mut result = Vec::new();
    for exchange in exchanges {
        let request = &exchange.request;
        let text = format!(
            "{:?}{}",
            request.headers,
            String::from_utf8_lossy(&request.body)
        );
        assert!(
            !text.contains(ATLAS_PRIVATE_KEY),
            "the private key was sent"
        );
        match request.header("Authorization") {
            None => assert_eq!(exchange.status, 401, "{request:?}"),
            Some(_) => {
                assert_ne!(
                    exchange.status, 401,
                    "digest authentication failed: {request:?}"
                );
                assert_eq!(request.header("Accept"), Some(ATLAS_VERSION));
                result.push((
                    calls(std::slice::from_ref(exchange)).remove(0),
                    exchange.status,
                ));
            }
        }
    }
    result
}

#[test]
fn mongodb_digitalocean_requests_match_the_api_and_runs_converge() {
    let (api, stub) = start_digitalocean();
    let provision = template("mongodb-provision-template");
    let deprovision = template("mongodb-deprovision-template");
    let names = MongoNames::plain("demo");
    let inputs = mongo_inputs("digitalocean_api", &stub.url(), &names, "unused-by-do-1");
    let base = ["v2", "databases", DO_CLUSTER];
    let at = |rest: &[&str]| path(&[&base[..], rest].concat());

    let created = run(&provision, &inputs);
    created.assert_success();
    let exchanges = stub.exchanges();
    assert_digitalocean_headers(&exchanges);
    let settings = json!({"mongo_user_settings": {
        "databases": [names.database, names.forum],
        "role": "readWrite",
    }});
    assert_eq!(
        calls(&exchanges),
        vec![
            ("GET".into(), at(&[]), None),
            ("GET".into(), at(&["dbs", &names.database]), None),
            (
                "POST".into(),
                at(&["dbs"]),
                Some(json!({"name": names.database}))
            ),
            ("GET".into(), at(&["dbs", &names.forum]), None),
            (
                "POST".into(),
                at(&["dbs"]),
                Some(json!({"name": names.forum}))
            ),
            ("GET".into(), at(&["users", &names.user]), None),
            (
                "POST".into(),
                at(&["users"]),
                Some(json!({"name": names.user, "settings": settings})),
            ),
        ]
    );
    let statuses: Vec<u16> = exchanges.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [200, 404, 201, 404, 201, 404, 201]);
    for exchange in exchanges.iter().filter(|e| e.request.method == "POST") {
        assert_eq!(
            exchange.request.header("Content-Type"),
            Some("application/json")
        );
    }
    let generated = {
        let api = api.lock().expect("state");
        assert_eq!(
            api.dbs,
            BTreeSet::from([names.database.clone(), names.forum.clone()])
        );
        assert_eq!(api.users[&names.user]["settings"], settings);
        api.generated.clone()
    };
    for password in &generated {
        assert!(
            !created.stdout.contains(password) && !created.stderr.contains(password),
            "the generated password was printed"
        );
    }

    // A second run finds everything and changes nothing.
    stub.clear();
    let again = run(&provision, &inputs);
    again.assert_success();
    let exchanges = stub.exchanges();
    assert_eq!(
        calls(&exchanges),
        vec![
            ("GET".into(), at(&[]), None),
            ("GET".into(), at(&["dbs", &names.database]), None),
            ("GET".into(), at(&["dbs", &names.forum]), None),
            ("GET".into(), at(&["users", &names.user]), None),
        ]
    );
    assert!(exchanges.iter().all(|e| e.status == 200));
    for password in &generated {
        assert!(!again.stdout.contains(password) && !again.stderr.contains(password));
    }

    stub.clear();
    run(&deprovision, &inputs).assert_success();
    let exchanges = stub.exchanges();
    assert_digitalocean_headers(&exchanges);
    assert_eq!(
        calls(&exchanges),
        vec![
            ("GET".into(), at(&[]), None),
            ("DELETE".into(), at(&["users", &names.user]), None),
            ("DELETE".into(), at(&["dbs", &names.database]), None),
            ("DELETE".into(), at(&["dbs", &names.forum]), None),
        ]
    );
    let statuses: Vec<u16> = exchanges.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [200, 204, 204, 204]);
    {
        let api = api.lock().expect("state");
        assert!(api.dbs.is_empty() && api.users.is_empty());
    }
    let twice = run(&deprovision, &inputs);
    twice.assert_success();
    assert!(twice.stdout.contains("already gone"), "{twice}");
}

#[test]
fn mongodb_atlas_requests_match_the_api_and_a_changed_password_is_applied() {
    let (api, stub) = start_atlas();
    let provision = template("mongodb-provision-template");
    let deprovision = template("mongodb-deprovision-template");
    let names = MongoNames::plain("demo");
    let (first, second) = ("first-Mongo-Password-1", "second-Mongo-Password-2");
    let users = path(&["api", "atlas", "v2", "groups", ATLAS_GROUP, "databaseUsers"]);
    let user = path(&[
        "api",
        "atlas",
        "v2",
        "groups",
        ATLAS_GROUP,
        "databaseUsers",
        "admin",
        &names.user,
    ]);
    let body = |password: &str| {
        json!({
            "databaseName": "admin",
            "groupId": ATLAS_GROUP,
            "username": names.user,
            "password": password,
            "roles": [
                {"databaseName": names.database, "roleName": "readWrite"},
                {"databaseName": names.forum, "roleName": "readWrite"},
            ],
            "scopes": [{"name": ATLAS_CLUSTER, "type": "CLUSTER"}],
        })
    };

    run(
        &provision,
        &mongo_inputs("atlas", &stub.url(), &names, first),
    )
    .assert_success();
    assert_eq!(
        atlas_calls(&stub.exchanges()),
        vec![(("POST".into(), users.clone(), Some(body(first))), 201)]
    );
    for exchange in stub.exchanges() {
        if exchange.request.method == "POST" && exchange.request.header("Authorization").is_some() {
            assert_eq!(exchange.request.header("Content-Type"), Some(ATLAS_VERSION));
        }
    }
    assert_eq!(api.lock().expect("state").users[&names.user], body(first));

    // Again: it exists, so it is updated to what is expected.
    stub.clear();
    run(
        &provision,
        &mongo_inputs("atlas", &stub.url(), &names, first),
    )
    .assert_success();
    assert_eq!(
        atlas_calls(&stub.exchanges()),
        vec![
            (("POST".into(), users.clone(), Some(body(first))), 409),
            (("PATCH".into(), user.clone(), Some(body(first))), 200),
        ]
    );
    assert_eq!(api.lock().expect("state").users[&names.user], body(first));

    stub.clear();
    run(
        &provision,
        &mongo_inputs("atlas", &stub.url(), &names, second),
    )
    .assert_success();
    assert_eq!(
        atlas_calls(&stub.exchanges()),
        vec![
            (("POST".into(), users.clone(), Some(body(second))), 409),
            (("PATCH".into(), user.clone(), Some(body(second))), 200),
        ]
    );
    assert_eq!(api.lock().expect("state").users[&names.user], body(second));

    stub.clear();
    let inputs = mongo_inputs("atlas", &stub.url(), &names, second);
    run(&deprovision, &inputs).assert_success();
    assert_eq!(
        atlas_calls(&stub.exchanges()),
        vec![(("DELETE".into(), user.clone(), None), 204)]
    );
    assert!(api.lock().expect("state").users.is_empty());
    stub.clear();
    let twice = run(&deprovision, &inputs);
    twice.assert_success();
    assert!(twice.stdout.contains("already gone"), "{twice}");
    assert_eq!(
        atlas_calls(&stub.exchanges()),
        vec![(("DELETE".into(), user, None), 404)]
    );
}

/// Names travel as single, percent-encoded path segments and exact JSON
/// strings: no value can reach another path (`..`, `/`, `?`, `#`) or run as
/// a command.
#[test]
fn mongodb_names_with_special_characters_reach_the_apis_exactly() {
    let marker = Marker::new();
    let m = marker.0.display();
    let names = MongoNames {
        database: format!("db 'q' \"d\" $(touch {m}) `touch {m}` \\ %2F"),
        forum: "../../../forum?x=1#y".to_owned(),
        user: format!("u/../.. é ${{HOME}} \\\" $(touch {m})"),
    };
    let password = format!("pw \"' \\ $(touch {m}) `touch {m}` $HOME");
    let provision = template("mongodb-provision-template");
    let deprovision = template("mongodb-deprovision-template");

    let (api, stub) = start_digitalocean();
    let inputs = mongo_inputs("digitalocean_api", &stub.url(), &names, &password);
    run(&provision, &inputs).assert_success();
    {
        let api = api.lock().expect("state");
        assert_eq!(
            api.dbs,
            BTreeSet::from([names.database.clone(), names.forum.clone()])
        );
        assert!(
            api.users.contains_key(&names.user),
            "{:?}",
            api.users.keys()
        );
    }
    run(&provision, &inputs).assert_success();
    assert!(
        stub.exchanges()
            .iter()
            .all(|e| e.status < 400 || e.status == 404)
    );
    run(&deprovision, &inputs).assert_success();
    {
        let api = api.lock().expect("state");
        assert!(api.dbs.is_empty() && api.users.is_empty());
    }
    for exchange in stub.exchanges() {
        let segments = exchange.request.segments().expect("decodes");
        assert_eq!(segments[..3], path(&["v2", "databases", DO_CLUSTER])[..]);
        assert!(segments.len() <= 5, "{segments:?}");
    }

    let (api, stub) = start_atlas();
    let inputs = mongo_inputs("atlas", &stub.url(), &names, &password);
    run(&provision, &inputs).assert_success();
    run(&provision, &inputs).assert_success();
    {
        let api = api.lock().expect("state");
        assert_eq!(api.users[&names.user]["password"], password.as_str());
        assert_eq!(
            api.users[&names.user]["roles"][1]["databaseName"],
            names.forum.as_str()
        );
    }
    run(&deprovision, &inputs).assert_success();
    assert!(api.lock().expect("state").users.is_empty());
    assert!(!marker.0.exists(), "a value was run as a shell command");
}

#[test]
fn mongodb_scripts_fail_loudly_on_unknown_provider_bad_credentials_or_unreachable_api() {
    let provision = template("mongodb-provision-template");
    let deprovision = template("mongodb-deprovision-template");
    let names = MongoNames::plain("broken");
    let (do_api, do_stub) = start_digitalocean();
    let (atlas_api, atlas_stub) = start_atlas();
    let password = "mongo-Password-1";

    for script in [&provision, &deprovision] {
        do_stub.clear();
        for (provider, needle) in [
            ("", "phd-provisioning has no mongodb-provider"),
            ("mongodb", "unknown MongoDB provider 'mongodb'"),
            ("disabled", "unknown MongoDB provider 'disabled'"),
        ] {
            run(
                script,
                &mongo_inputs(provider, &do_stub.url(), &names, password),
            )
            .assert_failure_mentioning(&[needle]);
        }
        assert!(do_stub.exchanges().is_empty());

        let wrong_token = mongo_inputs("digitalocean_api", &do_stub.url(), &names, password)
            .secret(
                PROVISIONING,
                "digitalocean-token",
                "dop_v1_wrong_token_value",
            );
        run(script, &wrong_token)
            .assert_failure_mentioning(&["HTTP 401", "Unable to authenticate"]);

        let wrong_key = mongo_inputs("atlas", &atlas_stub.url(), &names, password).secret(
            PROVISIONING,
            "atlas-private-key",
            "wrong-private-key-value",
        );
        run(script, &wrong_key).assert_failure_mentioning(&["HTTP 401"]);

        let unknown_cluster = mongo_inputs("digitalocean_api", &do_stub.url(), &names, password)
            .secret(
                PROVISIONING,
                "digitalocean-cluster-id",
                "00000000-0000-0000-0000-000000000000",
            );
        run(script, &unknown_cluster).assert_failure_mentioning(&[
            "cannot find the DigitalOcean database cluster",
            "HTTP 404",
            "could not be found",
        ]);

        // The ID of another engine's cluster (its MySQL one, say) is refused
        // before anything is made or removed.
        do_stub.clear();
        do_api.lock().expect("state").engine = "mysql";
        run(
            script,
            &mongo_inputs("digitalocean_api", &do_stub.url(), &names, password),
        )
        .assert_failure_mentioning(&["is not a MongoDB cluster"]);
        assert_eq!(
            calls(&do_stub.exchanges()),
            vec![("GET".into(), path(&["v2", "databases", DO_CLUSTER]), None)]
        );
        do_api.lock().expect("state").engine = "mongodb";

        let no_token = mongo_inputs("digitalocean_api", &do_stub.url(), &names, password)
            .without_secret(PROVISIONING, "digitalocean-token");
        run(script, &no_token)
            .assert_failure_mentioning(&["phd-provisioning has no digitalocean-token"]);
        let no_key = mongo_inputs("atlas", &atlas_stub.url(), &names, password)
            .without_secret(PROVISIONING, "atlas-private-key");
        run(script, &no_key)
            .assert_failure_mentioning(&["phd-provisioning has no atlas-private-key"]);

        let gone = format!("http://127.0.0.1:{}", free_port().expect("free port"));
        for provider in ["digitalocean_api", "atlas"] {
            run(script, &mongo_inputs(provider, &gone, &names, password))
                .assert_failure_mentioning(&["no answer from the", &gone]);
        }
    }
    assert!(do_api.lock().expect("state").users.is_empty());
    assert!(do_api.lock().expect("state").dbs.is_empty());
    assert!(atlas_api.lock().expect("state").users.is_empty());
}
