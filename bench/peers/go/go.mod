module corobench/go

go 1.19
