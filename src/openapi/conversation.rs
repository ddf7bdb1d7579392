//! The conversation routes of the document: reactions, typing, file replies
//! and the simulator's customer reactions, edits, deletions and receipts.

use super::*;

/// The rest of a conversation: reactions, typing, and the simulator's
/// customer reactions, edits, deletions and receipts.
pub(super) fn conversation(doc: &mut Value, jid_or_number: &str) {
    let sim = sim_op;
    let id = path_param(
        "id",
        "The message's public id: the `id` field of a message (not its WhatsApp `wa_id`).",
    );
    let mut phone = path_param("phone", CHAT_NAMING);
    phone["schema"]["pattern"] =
        json!("^(\\+?[0-9][0-9 ().-]{0,31}|[A-Za-z0-9._:-]{1,64}@[a-z0-9.-]{1,64})$");
    let paths = &mut doc["paths"];
    paths["/api/v1/messages/{id}/react"] = json!({ "post": op("React to a message",
        "Reacts to any message of a chat (incoming or ours) with one emoji as our account; an empty emoji \
         removes our reaction. It shows in the message's reactions with sender_jid \"me\".",
        vec![id],
        Some(body(json!({ "type": "object", "required": ["emoji"], "properties": {
            "emoji": d(json!({ "type": "string", "maxLength": 32 }),
                "One emoji (at most 32 bytes); \"\" removes our reaction.") } }))),
        json!({
            "200": resp("sent", success()),
            "400": err("emoji missing, not a string or over 32 bytes; a deleted or imported message"),
            "404": err("no such message"),
            "500": err("the send failed"),
            "503": err("WhatsApp not connected")
        }), false) });
    paths["/api/v1/conversations/{phone}/typing"] = json!({ "post": op("Show typing in a chat",
        "Shows \"typing…\" in a chat that wrote to us (it clears by itself after about 25 s, at once with \
         false, or when a reply is sent).",
        vec![phone],
        Some(body(json!({ "type": "object", "required": ["typing"], "properties": {
            "typing": d(json!({ "type": "boolean" }), "true: typing…; false: stop.") } }))),
        json!({
            "200": resp("done", success()),
            "400": err("typing is not a boolean, or the chat is not a number or JID"),
            "404": err("no message of this chat is stored"),
            "500": err("the send failed"),
            "503": err("WhatsApp not connected")
        }), false) });
    let from = || {
        d(
            json!({ "type": "string", "pattern": jid_or_number }),
            "The customer (a number or a JID): the chat of a direct message, the member in a group.",
        )
    };
    let group = || {
        d(
            json!({ "type": "string", "pattern": "^([0-9]{1,40}|[A-Za-z0-9._:-]{1,64}@g\\.us)$" }),
            "In this group (its JID or number).",
        )
    };
    let target = || {
        d(
            json!({ "type": "string", "minLength": 1, "maxLength": 128 }),
            "The WhatsApp id (wa_id) of the stored message it changes.",
        )
    };
    let applied = || {
        json!({ "type": "object", "properties": {
        "wa_id": d(json!({ "type": "string" }), "WhatsApp's id of the update itself.") } })
    };
    paths["/api/v1/simulator/reactions"] = json!({ "post": sim("A customer reacts (simulator only)",
        "A customer's reaction to a stored message (\"\" removes it), applied as the real backend applies one; \
         message.reaction fires. One aimed at a message never stored changes nothing. 201 once applied.",
        Some(body(json!({ "type": "object", "required": ["from", "target_wa_id", "emoji"], "properties": {
            "from": from(), "group": group(), "target_wa_id": target(),
            "emoji": d(json!({ "type": "string", "maxLength": 32 }), "The emoji; \"\" removes theirs.") } }))),
        ("201", "applied", applied())) });
    paths["/api/v1/simulator/edits"] = json!({ "post": sim("A customer edits a message (simulator only)",
        "The customer edited a message they sent: it takes the new text, the earlier one joins its edits; \
         message.edited fires. 201 once applied.",
        Some(body(json!({ "type": "object", "required": ["from", "target_wa_id", "text"], "properties": {
            "from": from(), "group": group(), "target_wa_id": target(),
            "text": d(json!({ "type": "string", "minLength": 1, "maxLength": 65536 }), "The new text.") } }))),
        ("201", "applied", applied())) });
    paths["/api/v1/simulator/revokes"] = json!({ "post": sim("A customer deletes a message for everyone (simulator only)",
        "The row stays but its text becomes [Deleted] and its media is erased; message.deleted fires. \
         201 once applied.",
        Some(body(json!({ "type": "object", "required": ["from", "target_wa_id"], "properties": {
            "from": from(), "group": group(), "target_wa_id": target() } }))),
        ("201", "applied", applied())) });
    paths["/api/v1/simulator/receipts"] = json!({ "post": sim("A receipt for a message the app sent (simulator only)",
        "Moves the message's delivery_status forward (never back; played counts as read) and fires \
         message.status. 201 once applied.",
        Some(body(json!({ "type": "object", "required": ["wa_id", "status"], "properties": {
            "wa_id": d(json!({ "type": "string", "minLength": 1, "maxLength": 128 }), "The sent message's WhatsApp id."),
            "status": d(json!({ "type": "string", "enum": ["delivered", "read", "played"] }), "What the receipt says.") } }))),
        ("201", "applied", success())) });
    let reply = &mut doc["paths"]["/api/v1/messages/{id}/reply"]["post"];
    reply["description"] = json!(
        "Sends the text to the message's chat, quoting it, or a file with the text as its \
        caption (media_base64 with its mime; the JSON body stays within the 1 MiB request limit, the file within \
        MEDIA_MAX_BYTES): jpeg, png and webp as an image, mp4 as a video, ogg with opus as a voice note, other audio \
        as an audio file, anything else as a document with its filename. The reply is stored as an outgoing message \
        (with media_type, media_url, media_mime, media_size for a file), the original becomes replied and \
        message.sent fires. With an Idempotency-Key, a retry of the same request (same message, same body) returns \
        the first answer and sends nothing; the same key with a different request is refused with 422."
    );
    reply["requestBody"] = body(json!({ "type": "object", "properties": {
        "message": d(json!({ "type": "string", "maxLength": 65536 }),
            "The reply's text (at most 65536 bytes), or a file's caption. Required (not blank) without a file."),
        "media_base64": d(json!({ "type": "string", "minLength": 4,
            "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$" }),
            "A file to send, base64 (not empty)."),
        "mime": d(json!({ "type": "string", "pattern": "^[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}(;.*)?$" }),
            "The file's media type, such as image/jpeg; required with media_base64."),
        "filename": d(json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^/\\\\]+$" }),
            "The name a document is sent with.") } }));
    reply["responses"]["400"] =
        err("missing message (and no file), not an incoming message, or a bad file");
    reply["responses"]["413"] = err(
        "the file is larger than MEDIA_MAX_BYTES, or the request body larger than \
         MEDIA_MAX_BYTES as base64 plus 1 MiB (1 MiB when it carries no file)",
    );
    reply["requestBody"]["content"]["multipart/form-data"] = json!({ "schema": { "type": "object", "properties": {
        "file": d(json!({ "type": "string", "format": "binary" }),
            "The file (its filename and content type are used; a type we cannot name goes as a document)."),
        "message": d(json!({ "type": "string", "maxLength": 65536 }), "The caption, or the text without a file.") } } });
    let reaction = json!({ "type": "object", "properties": {
        "sender_jid": d(json!({ "type": "string" }), "Who reacted: the customer's JID, or \"me\" for our account."),
        "emoji": d(json!({ "type": "string" }), "Their current reaction."),
        "created_at": d(json!({ "type": "string" }), "When it was set: YYYY-MM-DD HH:MM:SS, UTC.") } });
    let props = &mut doc["components"]["schemas"]["Message"]["properties"];
    props["reactions"] = d(
        json!({ "type": "array", "items": reaction }),
        "The current reaction of each sender, oldest first.",
    );
    props["edited_at"] = d(
        json!({ "type": ["string", "null"] }),
        "When its author last edited it (YYYY-MM-DD HH:MM:SS, UTC), or null.",
    );
    props["deleted_at"] = d(
        json!({ "type": ["string", "null"] }),
        "When it was deleted for everyone (its text is then [Deleted]), or null.",
    );
    props["edits"] = d(
        json!({ "type": "array", "items": { "type": "object", "properties": {
            "message": d(json!({ "type": "string" }), "The text before the edit."),
            "edited_at": d(json!({ "type": "string" }), "When it was replaced: YYYY-MM-DD HH:MM:SS, UTC.") } } }),
        "Only in GET /api/v1/messages/{id}: the earlier texts, oldest first.",
    );
    let sent = &mut doc["paths"]["/api/v1/simulator/sent"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["items"]["properties"];
    sent["kind"] = d(
        json!({ "type": "string", "enum": ["text", "media", "reaction", "read", "typing"] }),
        "What was sent: text (to, text, quoted_wa_id, wa_id), media (the same plus media_type, mime, \
         filename, size, sha256), reaction (to, target_wa_id, emoji, wa_id), read (to, wa_ids), typing (to, typing).",
    );
    sent["media_type"] = d(
        json!({ "type": "string", "enum": ["image", "video", "audio", "voice", "document"] }),
        "media: what the file was sent as.",
    );
    sent["mime"] = d(json!({ "type": "string" }), "media: the file's media type.");
    sent["filename"] = d(
        json!({ "type": ["string", "null"] }),
        "media: the name it was sent with.",
    );
    sent["size"] = d(json!({ "type": "integer" }), "media: its size in bytes.");
    sent["sha256"] = d(json!({ "type": "string" }), "media: its SHA-256, hex.");
    sent["target_wa_id"] = d(
        json!({ "type": "string" }),
        "reaction: the WhatsApp id of the message reacted to.",
    );
    sent["emoji"] = d(
        json!({ "type": "string" }),
        "reaction: the emoji (empty: ours removed).",
    );
    sent["wa_ids"] = d(
        json!({ "type": "array", "items": { "type": "string" } }),
        "read: the messages marked read.",
    );
    sent["typing"] = d(
        json!({ "type": "boolean" }),
        "typing: shown (true) or cleared (false).",
    );
}
