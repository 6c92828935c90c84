"""Whisper's fixed numbers and the file names the recipe's stages hand each other, named once so nothing else
hard-codes them."""

SAMPLING_RATE = 16000  # Whisper only takes 16 kHz audio
HOP_LENGTH = 160  # 10 ms frame shift
N_SAMPLES_30S = 30 * SAMPLING_RATE  # the encoder's fixed input window
N_FRAMES = N_SAMPLES_30S // HOP_LENGTH  # 3000 mel frames
FRAMES_PER_SECOND = SAMPLING_RATE // HOP_LENGTH  # 100 mel frames a second
MAX_INPUT_SECONDS = 30.0
MAX_LABEL_TOKENS = 448  # decoder max_target_positions, including <|startoftranscript|>
IGNORE_INDEX = -100  # label id ignored by the cross-entropy loss
TIMESTAMP_STEP = 0.02  # seconds between consecutive timestamp tokens <|0.00|>, <|0.02|>, ...
MEL_BINS = (80, 128)  # 80 for v1/v2 models, 128 for large-v3

# Log-mel floor: features are log10(power) clamped at 1e-10, i.e. -10, normalised by (x + 4) / 4.
LOG_MEL_FLOOR = (-10.0 + 4.0) / 4.0  # -1.5
DYNAMIC_RANGE = 8.0 / 4.0  # Whisper keeps 8 log10 units below the max: 2.0 after normalisation

# Languages written without spaces between words: spaces are removed from their transcripts
# and they are scored by character error rate.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})

# In the manifest dir: written by prepare.sh, read by training and named in finetune.sh's training stamp.
MUSAN_CUTS = "musan_cuts.jsonl.gz"  # prepare.sh's MUSAN stage; training with enable_musan
SHAR_DIR = "{prefix}_shar_{part}"  # prepare.sh --shar true; training with shar: true
