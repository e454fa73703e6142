//! FerretDB (tests/support/src/mongodb.rs) serves what the MongoDB backup and
//! restore scripts do through pymongo: documents of many BSON types in two
//! databases, batched reads, indexes, a raw copy of every collection and its
//! indexes into another database, drops; and, started with a user, it refuses
//! clients without the password.

use std::process::Command;

use phd_testkit::mongodb::{FerretDb, backup_python};

/// Writes documents of many BSON types into two databases and reads them
/// back, in batches too; creates and lists indexes; copies both databases
/// the way a dump and restore does (`listCollections`, `listIndexes`, `find`
/// and `insertMany` of raw BSON, `createIndexes`) and compares the bytes;
/// drops a collection and a database. Prints what it checked.
const ROUND_TRIP: &str = r#"
import datetime, os, uuid
from bson import Binary, Int64, ObjectId, Regex, Timestamp
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, DESCENDING, MongoClient

client = MongoClient(os.environ["MONGODB_URI"], serverSelectionTimeoutMS=10000)
typed = {
    "_id": ObjectId(),
    "string": "héllo, wörld",
    "int32": 7,
    "int64": Int64(2**40),
    "small_int64": Int64(3),
    "double": 1.5,
    "negative_zero": -0.0,
    "true": True,
    "null": None,
    "datetime": datetime.datetime(2025, 1, 2, 3, 4, 5, 678000),
    "binary": b"\x00\x01\xff",
    "uuid": Binary.from_uuid(uuid.UUID("12345678-1234-5678-1234-567812345678")),
    "array": [1, "a", {"x": [2.5]}],
    "document": {"z": 0, "a": {"k": [1, 2]}},
    "timestamp": Timestamp(1700000000, 1),
    "regex": Regex("^a.*", "i"),
    "empty": {},
}
client.openedx.modulestore.insert_one(typed)
client.openedx.modulestore.insert_many(
    [{"_id": f"block-{i:03}", "course_id": f"course-v1:X+Y+{i % 3}", "position": i} for i in range(250)]
)
client.cs_comments_service.contents.insert_many(
    [{"_id": ObjectId(), "course_id": "course-v1:X+Y+1", "body": "b" * 1000, "votes": {"up": [i]}} for i in range(40)]
)

got = client.openedx.modulestore.find_one({"_id": typed["_id"]})
assert got == typed, (got, typed)
assert list(got) == list(typed), "field order"
assert isinstance(got["int64"], Int64) and isinstance(got["small_int64"], Int64)
ids = [d["_id"] for d in client.openedx.modulestore.find({"position": {"$exists": True}}, batch_size=7).sort("_id", ASCENDING)]
assert ids == [f"block-{i:03}" for i in range(250)], ids
assert client.cs_comments_service.contents.count_documents({}) == 40
assert {"openedx", "cs_comments_service"} <= set(client.list_database_names())

modulestore = client.openedx.modulestore
assert modulestore.create_index([("course_id", ASCENDING), ("position", DESCENDING)], name="course_position") == "course_position"
assert client.cs_comments_service.contents.create_index("course_id", unique=False) == "course_id_1"
assert modulestore.create_index("string", unique=True, sparse=True) == "string_1"
indexes = {i["name"]: i for i in modulestore.list_indexes()}
assert set(indexes) == {"_id_", "course_position", "string_1"}, indexes
assert list(indexes["course_position"]["key"].items()) == [("course_id", 1), ("position", -1)]
assert indexes["string_1"].get("unique") is True

# The copy: every collection of both databases into restored-<name>.
raw = CodecOptions(document_class=RawBSONDocument)
copied = 0
for name in ("openedx", "cs_comments_service"):
    source, target = client[name], client[f"restored-{name}"]
    for info in source.list_collections():
        collection = info["name"]
        documents = list(source.get_collection(collection, codec_options=raw).find({}, batch_size=50))
        target[collection].insert_many(documents)
        specs = [
            {key: value for key, value in spec.items() if key not in ("v", "ns")}
            for spec in source[collection].list_indexes()
            if spec["name"] != "_id_"
        ]
        if specs:
            target.command("createIndexes", collection, indexes=specs)
        restored = {d["_id"]: d.raw for d in target.get_collection(collection, codec_options=raw).find()}
        assert restored == {d["_id"]: d.raw for d in documents}, collection
        assert [i["name"] for i in target[collection].list_indexes()] == [i["name"] for i in source[collection].list_indexes()]
        copied += len(documents)
assert copied == 291, copied

client["restored-openedx"].modulestore.drop()
assert client["restored-openedx"].list_collection_names() == []
client.drop_database("restored-cs_comments_service")
assert "restored-cs_comments_service" not in client.list_database_names()
print(f"copied {copied} documents")
"#;

/// Expects `MONGODB_URI` to work, and `MONGODB_ANONYMOUS_URI` and
/// `MONGODB_WRONG_URI` to be refused.
const REFUSALS: &str = r#"
import os
from pymongo import MongoClient
from pymongo.errors import OperationFailure

def client(variable):
    return MongoClient(os.environ[variable], serverSelectionTimeoutMS=10000)

client("MONGODB_URI").refusals.known.insert_one({"_id": "known"})
for variable, code in (("MONGODB_ANONYMOUS_URI", 13), ("MONGODB_WRONG_URI", 18)):
    try:
        client(variable).refusals.known.find_one({"_id": "known"})
    except OperationFailure as error:
        assert error.code == code, (variable, error.code, error)
        print(f"{variable}: {error.code}")
    else:
        raise AssertionError(f"{variable} was let in")
"#;

fn run_python(server: &FerretDb, script: &str, env: &[(&str, String)]) -> String {
    let output = Command::new(backup_python())
        .args(["-c", script])
        .envs(env.iter().map(|(name, value)| (*name, value)))
        .output()
        .expect("run the venv's python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the pymongo script failed with {}:\n{stdout}{}\n--- ferretdb's log ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        server.dir().display(),
        server.log()
    );
    stdout
}

#[test]
fn pymongo_writes_reads_indexes_copies_and_drops() {
    let server = FerretDb::start().expect("start FerretDB");
    assert_eq!(server.host(), "127.0.0.1");
    assert_eq!(
        server.uri(),
        format!("mongodb://127.0.0.1:{}/", server.port())
    );
    let out = run_python(&server, ROUND_TRIP, &[("MONGODB_URI", server.uri())]);
    assert!(out.contains("copied 291 documents"), "{out}");
}

#[test]
fn with_a_user_only_its_password_gets_in() {
    let password = "p@ss:w/rd %1";
    let server = FerretDb::start_with_user("root", password).expect("start FerretDB with a user");
    let uri = server.uri();
    assert_eq!(
        uri,
        format!(
            "mongodb://root:p%40ss%3Aw%2Frd%20%251@127.0.0.1:{}/?authSource=admin",
            server.port()
        )
    );
    let anonymous = format!("mongodb://127.0.0.1:{}/", server.port());
    let wrong = format!(
        "mongodb://root:wrong@127.0.0.1:{}/?authSource=admin",
        server.port()
    );
    let out = run_python(
        &server,
        REFUSALS,
        &[
            ("MONGODB_URI", uri.clone()),
            ("MONGODB_ANONYMOUS_URI", anonymous),
            ("MONGODB_WRONG_URI", wrong),
        ],
    );
    assert!(out.contains("MONGODB_ANONYMOUS_URI: 13"), "{out}");
    assert!(out.contains("MONGODB_WRONG_URI: 18"), "{out}");
    // The whole round trip works when authenticated, too.
    let out = run_python(&server, ROUND_TRIP, &[("MONGODB_URI", uri)]);
    assert!(out.contains("copied 291 documents"), "{out}");
    // The password is not on the server's command line.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(password),
        "the password is on ferretdb's command line"
    );
}
