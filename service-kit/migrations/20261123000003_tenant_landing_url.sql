-- Where the public invite link sends people when an invite names no landing URL of its own.
ALTER TABLE tenants ADD COLUMN landing_url text;
