"""Decision stores: where decision records are kept (SQLite on the device, DynamoDB in the cloud)."""
