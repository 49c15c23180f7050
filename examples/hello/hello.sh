echo "Hello from $(hostname), job ${SLURM_JOB_ID} on partition ${SLURM_JOB_PARTITION}"
echo "Running in $(pwd)"
