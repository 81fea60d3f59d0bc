model = dict(type="EncoderDecoder", decode_head=dict(num_classes=6)
train_dataloader = dict(  # a bracket never closed
