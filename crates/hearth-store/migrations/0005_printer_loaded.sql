-- What a member says the printer has loaded and fitted now (JSON of LoadedRequest), overriding the
-- material, colour and nozzle of the agent's configuration until that configuration changes them.
ALTER TABLE printers ADD COLUMN loaded TEXT;
