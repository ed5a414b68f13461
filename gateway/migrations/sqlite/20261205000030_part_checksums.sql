-- Per-part checksums of multipart objects and FULL_OBJECT multipart checksums (issue 16 item 6).
--
-- `object_streams.checksums`: the part's flexible checksum of its upload's algorithm, a JSON
-- map like `objects.checksums` ("crc32" -> base64), reported by GetObjectAttributes'
-- ObjectParts and `GET ?partNumber` with checksum mode. NULL for the streams of objects
-- completed before this migration, of single PUTs and of uploads without an algorithm (no
-- per-part checksum). The same values are sealed in the part manifest, so reindex restores them.
--
-- `uploads.checksum_type`: 'FULL_OBJECT' for an upload created with
-- `x-amz-checksum-type: FULL_OBJECT` (the object's checksum is the CRC of the whole plaintext,
-- combined from the parts' CRCs); NULL is COMPOSITE (or no algorithm), as before.
ALTER TABLE object_streams ADD COLUMN checksums TEXT;
ALTER TABLE uploads ADD COLUMN checksum_type TEXT;
