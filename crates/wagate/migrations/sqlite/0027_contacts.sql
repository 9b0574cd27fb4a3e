-- Contacts (issue 22): each person the session's account knows, keyed by
-- `jid` as before (`<digits>@s.whatsapp.net` when the number is known,
-- else `<digits>@lid`), with both ids where known, the name the user
-- saved (WhatsApp's app-state `contact` action), whether the number is on
-- WhatsApp (`NULL`: not known) and the id of their profile picture as
-- WhatsApp last reported it. Same portable SQL on both databases.
ALTER TABLE contacts ADD COLUMN phone TEXT;
ALTER TABLE contacts ADD COLUMN lid TEXT;
ALTER TABLE contacts ADD COLUMN saved_name TEXT;
ALTER TABLE contacts ADD COLUMN on_whatsapp BOOLEAN;
ALTER TABLE contacts ADD COLUMN picture_id TEXT;

UPDATE contacts SET phone = substr(jid, 1, length(jid) - 15)
    WHERE jid LIKE '%@s.whatsapp.net';
UPDATE contacts SET lid = substr(jid, 1, length(jid) - 4)
    WHERE jid LIKE '%@lid';

-- A contact by either id (the message writes look each sender up so).
CREATE INDEX contacts_by_phone ON contacts (session_id, phone);
CREATE INDEX contacts_by_lid ON contacts (session_id, lid);
