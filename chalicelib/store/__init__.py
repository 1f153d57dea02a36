"""DynamoDB persistence through PynamoDB: table models and the `DynamoStore` repository."""
