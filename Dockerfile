# balancerd in a container: built with cargo, run from a minimal base that holds only the
# binary, glibc, CA certificates and a non-root user (distroless "cc", nonroot: uid 65532).
#   docker build -t balancerd .
#   docker run -p 8080:8080 -v $PWD/conf:/etc/balancerd:ro balancerd
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin balancerd \
    && strip target/release/balancerd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/balancerd /usr/bin/balancerd
COPY --from=build /src/conf/balancerd.conf /etc/balancerd/balancerd.conf
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/balancerd"]
CMD ["--config", "/etc/balancerd/balancerd.conf"]
