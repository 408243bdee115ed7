loadgen --target router --url http://127.0.0.1:18200 --server-pid 31071 --connect-rate 2000 --publishers 64 --quiet --json --connections 5000 --users 1001 --max-per-user 5 --idle --duration 10
