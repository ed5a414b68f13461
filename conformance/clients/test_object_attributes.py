"""boto3 get_object_attributes against the gateway (issue 16 item 6): ETag without quotes, size,
storage class and checksum of a single PUT; the parts of a multipart object, paged with MaxParts
and PartNumberMarker; a VersionId; an SSE-C object only with its key; S3's codes for an unknown
attribute and a missing key. Also GET ?partNumber beyond the parts (400 InvalidPart); the
COMPOSITE and FULL_OBJECT (CRC32, checked with zlib) checksums of multipart uploads, each part's
own checksum in ObjectParts and on GET ?partNumber, and the algorithm/type pairs S3 refuses.
"""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest
from botocore.exceptions import ClientError

from conftest import MiB, client_error_code, make_payload

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
SSE_C = {
    "SSECustomerAlgorithm": "AES256",
    "SSECustomerKey": "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=",
    "SSECustomerKeyMD5": "DWygnHRtgiJ77HCm+1rvHw==",
}


def test_single_put_attributes(s3, bucket):
    body = make_payload(4321)
    r = s3.put_object(Bucket=bucket, Key="one", Body=body, ChecksumAlgorithm="SHA256")
    a = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=ALL)
    assert a["ETag"] == hashlib.md5(body).hexdigest() == r["ETag"].strip('"')
    assert a["ObjectSize"] == 4321
    assert a["StorageClass"] == "STANDARD"
    assert a["Checksum"]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert a["Checksum"]["ChecksumType"] == "FULL_OBJECT"
    assert "ObjectParts" not in a
    assert "VersionId" not in a
    assert a["LastModified"] is not None

    only = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == 4321
    assert "ETag" not in only and "Checksum" not in only and "StorageClass" not in only


def test_multipart_parts_are_paged(s3, bucket):
    sizes = [5 * MiB, 5 * MiB, 5 * MiB, 777]
    up = s3.create_multipart_upload(Bucket=bucket, Key="multi")
    parts = []
    for n, size in enumerate(sizes, start=1):
        r = s3.upload_part(Bucket=bucket, Key="multi", UploadId=up["UploadId"], PartNumber=n,
                           Body=make_payload(size, nonce=n))
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})

    a = s3.get_object_attributes(Bucket=bucket, Key="multi", ObjectAttributes=ALL)
    assert a["ETag"] == done["ETag"].strip('"')
    assert a["ETag"].endswith("-4")
    assert a["ObjectSize"] == sum(sizes)
    p = a["ObjectParts"]
    assert p["TotalPartsCount"] == 4
    assert p["IsTruncated"] is False
    assert [(x["PartNumber"], x["Size"]) for x in p["Parts"]] == list(enumerate(sizes, start=1))

    a = s3.get_object_attributes(Bucket=bucket, Key="multi", ObjectAttributes=["ObjectParts"],
                                 MaxParts=1, PartNumberMarker=2)
    p = a["ObjectParts"]
    assert [x["PartNumber"] for x in p["Parts"]] == [3]
    assert p["IsTruncated"] is True
    assert p["NextPartNumberMarker"] == 3
    assert p["MaxParts"] == 1
    assert p["PartNumberMarker"] == 2

    a = s3.get_object_attributes(Bucket=bucket, Key="multi", ObjectAttributes=["ObjectParts"],
                                 PartNumberMarker=3)
    p = a["ObjectParts"]
    assert [(x["PartNumber"], x["Size"]) for x in p["Parts"]] == [(4, 777)]
    assert p["IsTruncated"] is False

    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="multi", PartNumber=5)
    assert client_error_code(e.value) == (400, "InvalidPart")
    g = s3.get_object(Bucket=bucket, Key="multi", PartNumber=4)
    assert g["PartsCount"] == 4
    assert g["Body"].read() == make_payload(777, nonce=4)


def test_versions_and_sse_c(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"foo")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"longer")["VersionId"]
    a = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert (a["ObjectSize"], a["VersionId"]) == (6, v2)
    a = s3.get_object_attributes(Bucket=bucket, Key="k", VersionId=v1, ObjectAttributes=["ObjectSize"])
    assert (a["ObjectSize"], a["VersionId"]) == (3, v1)

    s3.put_object(Bucket=bucket, Key="secret", Body=b"x" * 1000, **SSE_C)
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="secret", ObjectAttributes=ALL)
    assert client_error_code(e.value) == (400, "InvalidRequest")
    a = s3.get_object_attributes(Bucket=bucket, Key="secret", ObjectAttributes=ALL, **SSE_C)
    assert a["ObjectSize"] == 1000


def test_refusals(s3, bucket):
    s3.put_object(Bucket=bucket, Key="one", Body=b"abc")
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=["ETag", "Colour"])
    assert client_error_code(e.value) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="none", ObjectAttributes=["ETag"])
    assert client_error_code(e.value) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="one", PartNumber=2)
    assert client_error_code(e.value) == (400, "InvalidPart")
    assert s3.get_object(Bucket=bucket, Key="one", PartNumber=1)["Body"].read() == b"abc"


def test_multipart_composite_checksum(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="ck", ChecksumAlgorithm="SHA256")
    assert up["ChecksumAlgorithm"] == "SHA256"
    bodies = [make_payload(5 * MiB, nonce=11), make_payload(999, nonce=12)]
    parts, digests = [], []
    for n, body in enumerate(bodies, start=1):
        r = s3.upload_part(Bucket=bucket, Key="ck", UploadId=up["UploadId"], PartNumber=n, Body=body,
                           ChecksumAlgorithm="SHA256")
        digest = hashlib.sha256(body).digest()
        assert r["ChecksumSHA256"] == base64.b64encode(digest).decode()
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
        digests.append(digest)
    composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + "-2"

    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="ck", UploadId=up["UploadId"],
                                     ChecksumSHA256=base64.b64encode(bytes(32)).decode() + "-2",
                                     MultipartUpload={"Parts": parts})
    assert client_error_code(e.value) == (400, "BadDigest")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="ck", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})
    assert done["ChecksumSHA256"] == composite
    assert done["ChecksumType"] == "COMPOSITE"
    h = s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert (h["ChecksumSHA256"], h["ChecksumType"]) == (composite, "COMPOSITE")
    assert "ChecksumSHA256" not in s3.head_object(Bucket=bucket, Key="ck")
    a = s3.get_object_attributes(Bucket=bucket, Key="ck", ObjectAttributes=["Checksum"])
    assert a["Checksum"] == {"ChecksumSHA256": composite, "ChecksumType": "COMPOSITE"}
    assert s3.get_object(Bucket=bucket, Key="ck")["Body"].read() == b"".join(bodies)

    # each part keeps its checksum: ObjectParts (paged) and GET ?partNumber with checksum mode
    want = [base64.b64encode(d).decode() for d in digests]
    a = s3.get_object_attributes(Bucket=bucket, Key="ck", ObjectAttributes=["ObjectParts"])
    assert [p["ChecksumSHA256"] for p in a["ObjectParts"]["Parts"]] == want
    a = s3.get_object_attributes(Bucket=bucket, Key="ck", ObjectAttributes=["ObjectParts"],
                                 MaxParts=1, PartNumberMarker=1)
    assert [(p["PartNumber"], p["ChecksumSHA256"]) for p in a["ObjectParts"]["Parts"]] == [(2, want[1])]
    for n, body in enumerate(bodies, start=1):
        g = s3.get_object(Bucket=bucket, Key="ck", PartNumber=n, ChecksumMode="ENABLED")
        assert (g["ChecksumSHA256"], g["ChecksumType"]) == (want[n - 1], "COMPOSITE")
        assert g["Body"].read() == body


def b64_crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_multipart_full_object_crc32(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="full", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")
    assert (up["ChecksumAlgorithm"], up["ChecksumType"]) == ("CRC32", "FULL_OBJECT")
    bodies = [make_payload(5 * MiB, nonce=21), make_payload(12345, nonce=22)]
    parts = []
    for n, body in enumerate(bodies, start=1):
        r = s3.upload_part(Bucket=bucket, Key="full", UploadId=up["UploadId"], PartNumber=n,
                           Body=body, ChecksumAlgorithm="CRC32")
        assert r["ChecksumCRC32"] == b64_crc32(body)
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    whole = b"".join(bodies)
    # the CRC of the first part only is not the object's: BadDigest
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=up["UploadId"],
                                     ChecksumCRC32=b64_crc32(bodies[0]), MultipartUpload={"Parts": parts})
    assert client_error_code(e.value) == (400, "BadDigest")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=up["UploadId"],
                                        ChecksumCRC32=b64_crc32(whole), MultipartUpload={"Parts": parts})
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (b64_crc32(whole), "FULL_OBJECT")
    h = s3.head_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert (h["ChecksumCRC32"], h["ChecksumType"]) == (b64_crc32(whole), "FULL_OBJECT")
    a = s3.get_object_attributes(Bucket=bucket, Key="full", ObjectAttributes=["Checksum", "ObjectParts"])
    assert a["Checksum"] == {"ChecksumCRC32": b64_crc32(whole), "ChecksumType": "FULL_OBJECT"}
    assert [p["ChecksumCRC32"] for p in a["ObjectParts"]["Parts"]] == [b64_crc32(b) for b in bodies]
    assert s3.get_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")["Body"].read() == whole
    g = s3.get_object(Bucket=bucket, Key="full", PartNumber=2, ChecksumMode="ENABLED")
    assert (g["ChecksumCRC32"], g["ChecksumType"]) == (b64_crc32(bodies[1]), "FULL_OBJECT")
    assert g["Body"].read() == bodies[1]


def test_checksum_types_refused_as_s3(s3, bucket):
    for algo, kind in [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")]:
        with pytest.raises(ClientError) as e:
            s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=algo, ChecksumType=kind)
        assert client_error_code(e.value) == (400, "InvalidRequest"), (algo, kind)
    # CRC64NVME has no other type: FULL_OBJECT without asking
    up = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="CRC64NVME")
    assert up["ChecksumType"] == "FULL_OBJECT"
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=up["UploadId"])
