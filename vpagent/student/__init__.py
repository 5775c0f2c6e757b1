"""The trained student at inference: the model, loading, answering, its vqa/captioner backend."""
