"""Transfer learning with few training examples (the course's slide): a CNN pre-trained on digits
0-4 of the embedded MNIST learns 5-9 from 50 labelled images per class. Prints the held-out 5-9
accuracy of the frozen-body + new-head model, of the fine-tuned model and of the same network
trained from scratch on the same 250 images. Same as `fastlayers train --model transfer`; the
steps are in fastlayers/demos/transfer.py (Keras's recipe: base.get_layer(...).output, a new
head, nn.Model, freeze(up_to=...), then unfreeze and fine-tune).

    python examples/transfer_few_shot.py
"""

from fastlayers.demos import transfer

result = transfer.run(seed=0)
for key in ("frozen_accuracy", "finetuned_accuracy", "scratch_accuracy"):
    print(f"{key}: {result[key]:.4f}")
