"""Moving runs between the store and other tracking systems (MLflow, W&B, TensorBoard)."""
